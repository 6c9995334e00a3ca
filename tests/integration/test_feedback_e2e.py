"""Feedback decides, end to end on the real broker: `driftgate run` as a process.

Two canaries built event by event, so their accuracy and class mix are exact:

- ``worse``: live right on 90% of requests, the canary on 80%, and the canary's answers
  have exactly live's class mix (its extra errors swap answers between requests of two
  classes). Nothing but the labelled outcomes tells them apart: the verdict is ``no_go``
  and says the canary is less accurate.
- ``better``: live right on 80%, the canary on 90%, and the two disagree on 25% of
  requests (over the 20% disagreement limit, a warning): the verdict is ``go``.

Users label 60% of requests a few seconds after they were answered.
"""

from __future__ import annotations

import heapq
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from integration.sidecar_process import (
    fresh_topics,
    get_json,
    produce_events,
    run_config,
    sidecar_process,
    wait_all_read,
)

pytestmark = pytest.mark.integration

CLASSES = ("invoice", "contract", "other")
MIX = (0.5, 0.3, 0.2)
REQUESTS = 2000
FEEDBACK_SHARE = 0.6
START_TS = 1_800_000_000.0
RATE_PER_S = 10.0


@dataclass(frozen=True)
class Request:
    request_id: str
    truth: str
    live: str
    canary: str


def _wrong(rng: random.Random, truth: str) -> str:
    return rng.choice([c for c in CLASSES if c != truth])


def worse_canary(rng: random.Random, n: int, prefix: str) -> list[Request]:
    """Live right on 90%, canary on 80%, and the same class counts for both."""
    truths = rng.choices(CLASSES, MIX, k=n)
    order = list(range(n))
    rng.shuffle(order)
    live_wrong = set(order[: n // 10])
    live = [_wrong(rng, t) if i in live_wrong else t for i, t in enumerate(truths)]
    canary = list(live)  # where live is wrong, the canary gives the same wrong answer
    right = {c: [i for i in order[n // 10:] if truths[i] == c] for c in CLASSES}
    # Each swap makes the canary wrong on two live-right requests of different classes and
    # leaves its class counts as they were: n // 20 swaps take 10 points of accuracy.
    cycle = (("invoice", "contract"), ("contract", "other"), ("other", "invoice"))
    for k in range(n // 20):
        a, b = cycle[k % len(cycle)]
        i, j = right[a].pop(), right[b].pop()
        canary[i], canary[j] = b, a
    return [Request(f"{prefix}-{i}", truths[i], live[i], canary[i]) for i in range(n)]


def better_canary(rng: random.Random, n: int, prefix: str) -> list[Request]:
    """Live right on 80%, canary on 90%; they disagree on 25% of requests."""
    truths = rng.choices(CLASSES, MIX, k=n)
    order = list(range(n))
    rng.shuffle(order)
    live = list(truths)
    canary = list(truths)
    live_wrong = order[: n // 5]
    for k, i in enumerate(live_wrong):
        live[i] = _wrong(rng, truths[i])
        if k >= n * 175 // 1000:  # the canary fixes 17.5 of live's 20 points of errors
            canary[i] = live[i]
    for i in order[n // 5: n // 5 + n * 75 // 1000]:  # and errs on 7.5% where live is right
        canary[i] = _wrong(rng, truths[i])
    return [Request(f"{prefix}-{i}", truths[i], live[i], canary[i]) for i in range(n)]


def _accuracy(requests: list[Request], role: str) -> float:
    return sum(getattr(r, role) == r.truth for r in requests) / len(requests)


def test_the_built_canaries_are_what_they_claim() -> None:
    worse = worse_canary(random.Random(1), REQUESTS, "w")
    assert _accuracy(worse, "live") == pytest.approx(0.9) and _accuracy(worse, "canary") == pytest.approx(0.8)
    assert Counter(r.live for r in worse) == Counter(r.canary for r in worse)
    better = better_canary(random.Random(2), REQUESTS, "b")
    assert _accuracy(better, "live") == pytest.approx(0.8) and _accuracy(better, "canary") == pytest.approx(0.9)
    assert sum(r.live != r.canary for r in better) / REQUESTS == pytest.approx(0.25)


def _events(requests: list[Request], deployment: str, rng: random.Random) -> Iterator[tuple[str, str, bytes]]:
    """(role, key, value) in event-time order: both answers, then user feedback 1 to 20 s later."""
    due: list[tuple[float, int, dict[str, Any]]] = []
    for i, request in enumerate(requests):
        ts = START_TS + i / RATE_PER_S
        while due and due[0][0] <= ts:
            feedback = heapq.heappop(due)[2]
            yield "feedback", feedback["request_id"], orjson.dumps(feedback)
        for role, label, version in (("live", request.live, "v41"), ("canary", request.canary, "v42")):
            event = {"request_id": request.request_id, "ts": ts, "deployment": deployment,
                     "model_version": version, "label": label}
            yield role, request.request_id, orjson.dumps(event)
        if rng.random() < FEEDBACK_SHARE:
            at = ts + rng.uniform(1.0, 20.0)
            heapq.heappush(due, (at, i, {"request_id": request.request_id, "ts": at, "deployment": deployment,
                                         "label": request.truth, "source": "user"}))
    while due:
        feedback = heapq.heappop(due)[2]
        yield "feedback", feedback["request_id"], orjson.dumps(feedback)


@dataclass
class Running:
    url: str


@pytest.fixture(scope="module")
def running(broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    run = fresh_topics(broker.bootstrap, "fb", ("worse", "better"))
    topics = run.inputs
    directory = tmp_path_factory.mktemp("feedback-e2e")
    config = run_config(
        broker.bootstrap, run,
        [{"name": name, "topics": topics[name], "classes": list(CLASSES)} for name in topics],
        state={"dir": str(directory / "state")},
    )
    with sidecar_process(config, directory) as sidecar:
        url = sidecar.url
        produced: dict[str, Counter[str]] = {}
        for name, build, seed in (("worse", worse_canary, 1), ("better", better_canary, 2)):
            rng = random.Random(seed)
            events = _events(build(rng, REQUESTS, name), name, rng)
            produced[name] = produce_events(broker.bootstrap, topics[name], events)
        wait_all_read(url, produced)
        yield Running(url)


def _settled_verdict(url: str, name: str, expected: str, timeout_s: float = 10) -> dict[str, Any]:
    """The verdict once it is ``expected`` (or the last one seen when the time is up)."""
    deadline = time.monotonic() + timeout_s
    while True:
        verdict: dict[str, Any] = get_json(url, f"/v1/deployments/{name}/verdict")
        if verdict["verdict"] == expected or time.monotonic() > deadline:
            return verdict
        time.sleep(0.2)


def test_less_accurate_canary_with_the_same_class_mix_is_no_go(running: Running) -> None:
    verdict = _settled_verdict(running.url, "worse", "no_go")
    assert verdict["verdict"] == "no_go", verdict["reasons"]
    checks = {check["name"]: check for check in verdict["checks"]}
    # Nothing in the class mix gives it away: only the labelled outcomes do.
    failed = {name for name, check in checks.items() if check["status"] == "fail"}
    assert failed and failed <= {"accuracy", "class_precision"}, verdict["checks"]
    assert "accuracy" in failed
    assert checks["class_divergence"]["status"] != "fail"
    assert checks["collapse"]["status"] == "pass"
    assert any("less accurate" in reason for reason in verdict["reasons"]), verdict["reasons"]
    assert verdict["samples"]["feedback"] >= REQUESTS * FEEDBACK_SHARE * 0.9
    snapshot = get_json(running.url, "/v1/deployments/worse/metrics")
    live, canary = snapshot["comparison"]["live"], snapshot["comparison"]["canary"]
    assert live == canary  # the same class counts
    feedback = snapshot["comparison"]["feedback"]
    assert feedback["live"]["accuracy"]["estimate"] == pytest.approx(0.9, abs=0.03)
    assert feedback["canary"]["accuracy"]["estimate"] == pytest.approx(0.8, abs=0.03)
    assert feedback["canary"]["accuracy"]["upper"] < feedback["live"]["accuracy"]["lower"]


def test_more_accurate_canary_that_disagrees_more_is_go(running: Running) -> None:
    verdict = _settled_verdict(running.url, "better", "go")
    assert verdict["verdict"] == "go", verdict["reasons"]
    checks = {check["name"]: check for check in verdict["checks"]}
    assert checks["accuracy"]["status"] == "pass"
    assert "accurate" in checks["accuracy"]["detail"]
    assert checks["accuracy"]["value"] > 0  # canary minus live
    assert checks["disagreement"]["status"] == "warn"
    assert checks["disagreement"]["value"] == pytest.approx(0.25, abs=0.01)
    assert any("disagree" in reason for reason in verdict["reasons"]), verdict["reasons"]
    feedback = get_json(running.url, "/v1/deployments/better/metrics")["comparison"]["feedback"]
    assert feedback["canary"]["accuracy"]["estimate"] > feedback["live"]["accuracy"]["estimate"]
