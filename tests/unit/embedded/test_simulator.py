"""Tests of monitor.embedded.simulator: determinism, decodable payloads, the scenarios' class mixes, feedback timing."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from functools import cache

import orjson
import pytest

from monitor.core.events import EventDecoder, load_object
from monitor.embedded.simulator import CLASSES, SCENARIOS, SimEvent, TrafficSimulator

START = 1_795_000_000.0
RATE = 50.0
N_LARGE = 20_000


@cache
def traffic(scenario: str, n: int, seed: int = 7) -> tuple[SimEvent, ...]:
    return tuple(TrafficSimulator(scenario=scenario, seed=seed).stream(n, START, RATE))


def shares(events: tuple[SimEvent, ...], role: str) -> dict[str, float]:
    labels = Counter(e.payload["label"] for e in events if e.role == role)
    total = sum(labels.values())
    return {label: labels[label] / total for label in CLASSES}


def difference_tolerance(p: float, q: float, n: int, z: float = 4.0) -> float:
    """z standard errors of a difference of two shares over n requests each.

    The two answers of one request may be correlated, so the bound sd(c - l) <= sd(c) + sd(l)
    is used: it holds for any correlation.
    """
    return z * (math.sqrt(p * (1 - p)) + math.sqrt(q * (1 - q))) / math.sqrt(n)


def test_same_seed_same_events_other_seed_other_events() -> None:
    first = list(TrafficSimulator(scenario="shift", seed=3).stream(300, START, RATE))
    again = list(TrafficSimulator(scenario="shift", seed=3).stream(300, START, RATE))
    other = list(TrafficSimulator(scenario="shift", seed=4).stream(300, START, RATE))
    assert first == again
    assert [e.payload for e in first] != [e.payload for e in other]


def test_unknown_scenario_is_refused() -> None:
    with pytest.raises(ValueError):
        TrafficSimulator(scenario="chaos")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_payload_decodes(scenario: str) -> None:
    decoder = EventDecoder()
    events = traffic(scenario, 2000)
    roles = Counter(e.role for e in events)
    assert roles["live"] == roles["canary"] == 2000
    assert roles["feedback"] > 0
    for event in events:
        obj = load_object(orjson.dumps(event.payload), 1_048_576)
        if event.role == "feedback":
            feedback = decoder.feedback(obj, received_ts=0.0)
            assert feedback.request_id == event.key
            assert feedback.label in CLASSES
            assert feedback.source == "user"
        else:
            prediction = decoder.prediction(obj, received_ts=0.0)
            assert prediction.request_id == event.key
            assert prediction.deployment == "doc-classifier"
            assert prediction.label in CLASSES
            assert prediction.model_version == ("v41" if event.role == "live" else "v42")
            assert prediction.scores is not None and set(prediction.scores) == set(CLASSES)
            assert max(prediction.scores, key=prediction.scores.__getitem__) == prediction.label


def test_requests_are_spaced_at_the_rate() -> None:
    live = [e.payload["ts"] for e in traffic("good", 2000) if e.role == "live"]
    assert live[0] == START
    assert all(b - a == pytest.approx(1 / RATE, abs=1e-6) for a, b in itertools.pairwise(live))


def test_collapse_canary_answers_mostly_invoice() -> None:
    events = traffic("collapse", N_LARGE)
    canary, live = shares(events, "canary"), shares(events, "live")
    assert canary["invoice"] > 0.8
    assert live["invoice"] < 0.8


def test_shift_moves_ten_points_from_contract_to_invoice() -> None:
    events = traffic("shift", N_LARGE)
    canary, live = shares(events, "canary"), shares(events, "live")
    invoice_gap = canary["invoice"] - live["invoice"]
    contract_gap = canary["contract"] - live["contract"]
    assert abs(invoice_gap - 0.10) <= difference_tolerance(canary["invoice"], live["invoice"], N_LARGE)
    assert abs(contract_gap + 0.10) <= difference_tolerance(canary["contract"], live["contract"], N_LARGE)
    assert abs(canary["other"] - live["other"]) <= difference_tolerance(canary["other"], live["other"], N_LARGE)


def test_good_canary_keeps_live_class_mix() -> None:
    events = traffic("good", N_LARGE)
    canary, live = shares(events, "canary"), shares(events, "live")
    for label in CLASSES:
        assert abs(canary[label] - live[label]) <= difference_tolerance(canary[label], live[label], N_LARGE)


def test_feedback_arrives_no_earlier_than_its_request() -> None:
    simulator = TrafficSimulator(scenario="good", seed=11)
    low, high = simulator.feedback_delay_s
    request_ts: dict[str, float] = {}
    feedback_seen = 0
    for event in simulator.stream(3000, START, RATE):
        if event.role == "feedback":
            feedback_seen += 1
            assert event.key in request_ts  # the request's answers came first in the stream
            delay = event.payload["ts"] - request_ts[event.key]
            assert low <= delay <= high
        else:
            request_ts.setdefault(event.key, event.payload["ts"])
            assert event.payload["ts"] == request_ts[event.key]  # live and canary share the request time
    assert feedback_seen > 0
