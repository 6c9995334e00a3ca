"""Integer labels, as a scikit-learn classifier emits them, end to end on the real broker.

`driftgate run` as a process, on a config that names its classes `[0, 1, 2]` (integers in
the YAML file). Live answers `0`, `1`, `2`; the canary answers the same classes, half of the
time as the strings `"0"`, `"1"`, `"2"`; users give the true class as an integer. The
canary fixes most of live's errors: the counts are per class `"0"`, `"1"`, `"2"`, the
labelled outcomes show it more accurate, and the verdict is ``go``. A label `7.0` is
dead-lettered as `wrong_type` and a label `3` as `unknown_class` (docs/contract.md §1).
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
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

CLASSES = (0, 1, 2)
MIX = (0.5, 0.3, 0.2)
REQUESTS = 1500
FEEDBACK_SHARE = 0.6
START_TS = 1_800_000_000.0
RATE_PER_S = 10.0
# Dead-lettered before any good event, so they are read before the counts are complete.
BAD: list[tuple[bytes, str]] = [
    (b'{"request_id": "bad-1", "deployment": "digits", "label": 7.0}', "wrong_type"),
    (b'{"request_id": "bad-2", "deployment": "digits", "label": 3}', "unknown_class"),
]


@dataclass(frozen=True)
class Request:
    request_id: str
    truth: int
    live: int
    canary: int


def requests(rng: random.Random) -> list[Request]:
    """Live right on about 90% of requests; the canary fixes two thirds of live's errors."""
    built = []
    for i in range(REQUESTS):
        truth = rng.choices(CLASSES, MIX)[0]
        live = truth if rng.random() < 0.9 else (truth + rng.choice((1, 2))) % 3
        canary = truth if live != truth and rng.random() < 2 / 3 else live
        built.append(Request(f"d-{i}", truth, live, canary))
    return built


def events(built: list[Request], rng: random.Random) -> Iterator[tuple[str, str, bytes]]:
    """(role, key, value) in event-time order: both answers, then a user's label 1 to 20 s later."""
    due: list[tuple[float, int, dict[str, Any]]] = []
    for i, request in enumerate(built):
        ts = START_TS + i / RATE_PER_S
        while due and due[0][0] <= ts:
            feedback = heapq.heappop(due)[2]
            yield "feedback", feedback["request_id"], orjson.dumps(feedback)
        canary: int | str = str(request.canary) if i % 2 else request.canary
        for role, label, version in (("live", request.live, "v41"), ("canary", canary, "v42")):
            event = {"request_id": request.request_id, "ts": ts, "deployment": "digits",
                     "model_version": version, "label": label}
            yield role, request.request_id, orjson.dumps(event)
        if rng.random() < FEEDBACK_SHARE:
            at = ts + rng.uniform(1.0, 20.0)
            heapq.heappush(due, (at, i, {"request_id": request.request_id, "ts": at, "deployment": "digits",
                                         "label": request.truth, "source": "user"}))
    while due:
        feedback = heapq.heappop(due)[2]
        yield "feedback", feedback["request_id"], orjson.dumps(feedback)


@dataclass
class Running:
    url: str
    built: list[Request]
    feedback_produced: int


@pytest.fixture(scope="module")
def running(broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    run = fresh_topics(broker.bootstrap, "intlabels", ("digits",))
    topics = run.inputs["digits"]
    directory = tmp_path_factory.mktemp("integer-labels")
    config = run_config(
        broker.bootstrap, run,
        [{"name": "digits", "topics": topics, "classes": list(CLASSES),
          "spotcheck": {"max_per_minute": 600, "priority": {0: 2}}}],
        state={"dir": str(directory / "state")},
    )
    with sidecar_process(config, directory) as sidecar:
        produce_events(broker.bootstrap, topics, (("live", "bad", value) for value, _ in BAD))
        rng = random.Random(7)
        built = requests(rng)
        produced = produce_events(broker.bootstrap, topics, events(built, rng))
        wait_all_read(sidecar.url, {"digits": produced})
        yield Running(sidecar.url, built, produced["feedback"])


def test_integer_labels_are_counted_per_class_of_their_text(running: Running) -> None:
    snapshot = get_json(running.url, "/v1/deployments/digits/metrics")
    assert snapshot["classes"] == ["0", "1", "2"]
    live = Counter(str(r.live) for r in running.built)
    canary = Counter(str(r.canary) for r in running.built)
    assert snapshot["predictions"]["live"] == dict(live)
    assert snapshot["predictions"]["canary"] == dict(canary)  # 7 and "7" are one class
    assert snapshot["comparison"]["live"] == dict(live) and snapshot["comparison"]["canary"] == dict(canary)
    assert snapshot["dead_letters"] == {"wrong_type": 1, "unknown_class": 1}
    text = httpx.get(f"{running.url}/metrics", timeout=5).text
    assert f'driftgate_predictions_total{{class="0",deployment="digits",role="live"}} {float(live["0"])}' in text
    for _, reason in BAD:
        assert f'driftgate_dead_letters_total{{deployment="digits",reason="{reason}"}} 1.0' in text


def test_integer_feedback_judges_the_answers_and_the_verdict_is_go(running: Running) -> None:
    verdict = get_json(running.url, "/v1/deployments/digits/verdict")
    assert verdict["verdict"] == "go", verdict["reasons"]
    checks = {check["name"]: check for check in verdict["checks"]}
    assert checks["accuracy"]["status"] == "pass" and checks["accuracy"]["value"] > 0
    assert checks["class_precision"]["status"] == "pass"
    assert verdict["samples"]["feedback"] == running.feedback_produced
    feedback = get_json(running.url, "/v1/deployments/digits/metrics")["comparison"]["feedback"]
    live_accuracy = sum(r.live == r.truth for r in running.built) / len(running.built)
    assert feedback["live"]["accuracy"]["estimate"] == pytest.approx(live_accuracy, abs=0.03)
    assert feedback["canary"]["accuracy"]["estimate"] > feedback["live"]["accuracy"]["estimate"]


def test_a_reviewer_labels_a_case_by_the_class_text(running: Running) -> None:
    cases = get_json(running.url, "/v1/deployments/digits/spotcheck")["cases"]
    assert cases, "no disagreement was picked for review"
    case = cases[0]
    assert {case["live_label"], case["canary_label"]} <= {"0", "1", "2"}
    answer = httpx.post(f"{running.url}/v1/deployments/digits/labels",
                        json={"request_id": case["request_id"], "label": "1"}, timeout=10)
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"request_id": case["request_id"], "label": "1", "sent": True}
    refused = httpx.post(f"{running.url}/v1/deployments/digits/labels",
                         json={"request_id": case["request_id"], "label": "7"}, timeout=10)
    assert refused.status_code == 422
