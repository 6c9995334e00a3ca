"""The default policy on the simulator's scenarios: collapse and shift no_go within a few hundred
canary events, the equal retrain go — read every 50 requests, as a sidecar reads it continuously."""

from __future__ import annotations

import orjson
import pytest

from monitor.config import parse_config
from monitor.core.ingest import Ingest
from monitor.core.records import Record
from monitor.core.verdict import evaluate
from monitor.embedded.simulator import TrafficSimulator

TOPICS = {"live": "predictions.live", "canary": "predictions.canary", "feedback": "feedback"}


def first_decision(scenario: str, seed: int, max_requests: int = 10_000) -> tuple[int, str] | None:
    settings = parse_config({"deployments": [{"name": "doc-classifier", "classes": ["invoice", "contract", "other"]}]})
    ingest = Ingest(settings)
    simulator = TrafficSimulator(scenario, seed=seed)
    offset = 0
    for i in range(max_requests):
        records = [
            Record(TOPICS[e.role], 0, offset + k, e.key.encode(), orjson.dumps(e.payload))
            for k, e in enumerate(simulator.request(1.8e9 + i / 200))
        ]
        offset += len(records)
        ingest.process(records, 1.8e9)
        if i % 50 == 0:
            verdict = evaluate(settings.deployments[0], ingest.states["doc-classifier"])
            if verdict.verdict in ("go", "no_go"):
                return i, verdict.verdict
    return None


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(("scenario", "verdict", "within"), [("collapse", "no_go", 200), ("shift", "no_go", 800)])
def test_a_broken_canary_is_stopped_within_a_few_hundred_requests(
    scenario: str, verdict: str, within: int, seed: int
) -> None:
    decision = first_decision(scenario, seed)
    assert decision is not None and decision[1] == verdict
    assert decision[0] <= within


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_an_equal_retrain_ends_go_and_never_no_go_first(seed: int) -> None:
    decision = first_decision("good", seed)
    assert decision is not None and decision[1] == "go"
