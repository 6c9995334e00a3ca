"""The CI gate client: wait for a deployment's verdict and turn it into an exit code (docs/contract.md §5)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

EXIT_GO = 0
EXIT_NO_GO = 1
EXIT_UNDECIDED = 2
EXIT_UNREACHABLE = 3
DECIDED = ("go", "no_go", "inconclusive")


@dataclass(frozen=True)
class GateOutcome:
    """The last verdict read (None when the service could not be read) and the exit code it means."""

    exit_code: int
    verdict: dict[str, Any] | None
    error: str | None = None


def exit_code_for(verdict: str) -> int:
    """0 for go, 1 for no_go, 2 for inconclusive or pending."""
    return {"go": EXIT_GO, "no_go": EXIT_NO_GO}.get(verdict, EXIT_UNDECIDED)


def read_verdict(client: httpx.Client, url: str, deployment: str) -> dict[str, Any]:
    """GET the verdict object; raises httpx errors or ValueError for an unusable answer."""
    response = client.get(f"{url.rstrip('/')}/v1/deployments/{deployment}/verdict")
    if response.status_code != 200:
        detail = response.text[:200]
        raise ValueError(f"HTTP {response.status_code} from the service: {detail}")
    body = response.json()
    if not isinstance(body, dict) or body.get("verdict") not in (*DECIDED, "pending"):
        raise ValueError("the answer is not a verdict object")
    return body


def wait_for_verdict(
    url: str,
    deployment: str,
    wait_s: float,
    token: str | None = None,
    poll_s: float = 2.0,
    on_poll: Callable[[dict[str, Any] | None, float], None] | None = None,
    timeout_s: float = 10.0,
) -> GateOutcome:
    """Poll until the verdict is decided or ``wait_s`` has passed; unreachable counts only at the end."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    deadline = time.monotonic() + wait_s
    last: dict[str, Any] | None = None
    error: str | None = None
    with httpx.Client(headers=headers, timeout=timeout_s) as client:
        while True:
            try:
                last = read_verdict(client, url, deployment)
                error = None
            except (httpx.HTTPError, ValueError) as problem:
                error = str(problem) or type(problem).__name__
            remaining = deadline - time.monotonic()
            if on_poll is not None:
                on_poll(last, max(remaining, 0.0))
            if last is not None and last["verdict"] in DECIDED and error is None:
                return GateOutcome(exit_code_for(last["verdict"]), last)
            if remaining <= 0:
                break
            time.sleep(min(poll_s, remaining))
    if error is not None and last is None:
        return GateOutcome(EXIT_UNREACHABLE, None, error)
    if error is not None:
        return GateOutcome(EXIT_UNREACHABLE, last, error)
    assert last is not None
    return GateOutcome(exit_code_for(last["verdict"]), last)


def parse_duration(text: str) -> float:
    """Seconds from '90', '90s', '5m', '1h' or '1h30m'."""
    text = text.strip().lower()
    if not text:
        raise ValueError("empty duration")
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"duration {text!r} must be a finite number of seconds, 0 or more")
        return seconds
    total, number = 0.0, ""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0}
    for char in text:
        if char.isdigit() or char == ".":
            number += char
        elif char in units and number:
            total += float(number) * units[char]
            number = ""
        else:
            raise ValueError(f"cannot read duration {text!r}; use e.g. 90s, 5m or 1h")
    if number:
        raise ValueError(f"cannot read duration {text!r}: a number lacks its unit")
    return total
