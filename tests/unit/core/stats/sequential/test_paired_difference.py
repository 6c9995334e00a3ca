"""Tests of monitor.core.stats.sequential.paired_difference: validity by simulation, paths = the check step by step.

Simulations read the check after *every* step of every stream (see
tests/unit/core/stats/streams.py for the allowance that a valid check must stay within).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from monitor.core.stats.confidence_sequence import BoundedMeanCS, log_e_value, running_sums
from monitor.core.stats.sequential.paired_difference import PairedDifference

from ..streams import ALPHA, allowance, ever
from .classes import CLASSES, LIVE_MIX, paired_streams

STREAMS = 400
STEPS = 2000


# --- the guarantee: under the null, checked after every step, errors stay at or below alpha


def test_class_check_without_margin_rarely_alarms_on_an_aa_stream() -> None:
    # Margin 0 is the harshest null: canary and live have the same class mix exactly.
    canary, live = paired_streams(LIVE_MIX, LIVE_MIX, STREAMS, STEPS, seed=1)
    paths = PairedDifference.decision_paths(canary, live, 3, margin=0.0, alpha=ALPHA)
    assert ever(paths.no_go) <= allowance(STREAMS)
    assert not paths.go.any()  # go needs the gap shown below 0: impossible


def test_class_check_at_the_margin_errs_either_way_at_most_alpha() -> None:
    # Invoice +5 points and contract -5 points: the largest gap equals the margin, the
    # boundary of both nulls (no_go's "D <= margin" and go's "D >= margin").
    canary_mix = np.array([0.55, 0.25, 0.2])
    canary, live = paired_streams(canary_mix, LIVE_MIX, STREAMS, STEPS, seed=2)
    paths = PairedDifference.decision_paths(canary, live, 3, margin=0.05, alpha=ALPHA)
    assert ever(paths.no_go) <= allowance(STREAMS)
    assert ever(paths.go) <= allowance(STREAMS)


def test_class_no_go_e_value_is_a_supermartingale_at_the_margin() -> None:
    # The average of the 2K outside e-processes, with the largest gap equal to the margin.
    streams = 3000
    canary, live = paired_streams(np.array([0.55, 0.25, 0.2]), LIVE_MIX, streams, 600, seed=8)
    classes = np.arange(3)[:, None]
    differences = (canary[:, None, :] == classes).astype(float) - (live[:, None, :] == classes).astype(float)
    sums = running_sums(differences, -1.0, 1.0)
    outside = np.exp(log_e_value(sums, 0.05, "above")) + np.exp(log_e_value(sums, -0.05, "below"))
    average = outside.sum(axis=1) / 6
    for t in (9, 99, 599):
        column = average[:, t]
        assert column.mean() <= 1 + 3 * column.std(ddof=1) / math.sqrt(streams), t


# --- detection


def test_a_collapsed_canary_is_no_go_within_a_few_hundred_events() -> None:
    decided_by = []
    for seed in range(20):
        canary, live = paired_streams(np.array([0.85, 0.1, 0.05]), LIVE_MIX, 1, 300, seed=100 + seed)
        check = PairedDifference(CLASSES)
        for step, (canary_answer, live_answer) in enumerate(zip(canary[0], live[0], strict=True), start=1):
            if check.update(int(canary_answer), int(live_answer)).decision == "no_go":
                decided_by.append(step)
                break
    assert len(decided_by) >= 18, decided_by
    assert np.median(decided_by) <= 150


def test_a_shift_beyond_the_margin_is_found_and_one_inside_is_not_blocked() -> None:
    # A 10-point shift, canary and live answering independently (no shared requests to help).
    canary, live = paired_streams(np.array([0.6, 0.2, 0.2]), LIVE_MIX, 50, 3000, seed=9)
    beyond = PairedDifference.decision_paths(canary, live, 3, margin=0.01)
    assert ever(beyond.no_go) >= 0.9
    inside = PairedDifference.decision_paths(canary, live, 3, margin=0.2)
    assert not inside.no_go.any()
    assert ever(inside.go) >= 0.9


# --- batch paths equal one-by-one updates


def test_class_decision_paths_equal_the_check_read_after_every_request() -> None:
    canary, live = paired_streams(np.array([0.75, 0.15, 0.1]), LIVE_MIX, 3, 400, seed=11)
    paths = PairedDifference.decision_paths(canary, live, 3, margin=0.02)
    for stream in range(3):
        check = PairedDifference(CLASSES, margin=0.02)
        for t in range(400):
            decision = check.update(int(canary[stream, t]), int(live[stream, t])).decision
            expected = "no_go" if paths.no_go[stream, t] else "go" if paths.go[stream, t] else "undecided"
            assert decision == expected, (stream, t)
    assert paths.no_go.any()


# --- the check's outputs


def test_empty_state_is_the_whole_range_and_no_evidence() -> None:
    cs = BoundedMeanCS(0.0, 1.0)
    assert (cs.n, cs.lower, cs.upper, cs.mean) == (0, 0.0, 1.0, 0.5)
    assert cs.e_value_above(0.5) == pytest.approx(1.0)
    assert cs.update_many([]).n == 0
    check = PairedDifference(CLASSES)
    assert check.decision == "undecided"
    assert check.distance_bounds == (0.0, 1.0)
    assert "no paired requests yet" in check.explain()


def test_evidence_and_explanation_of_a_collapse() -> None:
    canary, live = paired_streams(np.array([0.85, 0.1, 0.05]), LIVE_MIX, 1, 400, seed=16)
    check = PairedDifference(CLASSES, margin=0.05).update_many(canary[0], live[0])
    facts = check.evidence()
    json.dumps(facts)
    assert facts["decision"] == "no_go"
    assert facts["focus_class"] == "invoice"
    assert facts["cs_lower"] > 0.05
    assert facts["cs_lower"] <= facts["estimate"] <= facts["cs_upper"]
    assert facts["e_value_no_go"] >= 1 / ALPHA
    assert facts["p_value_no_go"] <= ALPHA
    invoice = facts["classes"]["invoice"]
    assert invoice["cs_lower"] <= invoice["estimate"] <= invoice["cs_upper"]
    sentence = check.explain()
    assert sentence.startswith("canary answers 'invoice' ")
    assert "more often than live" in sentence and "margin of 5" in sentence and sentence.endswith("no-go.")


def test_distance_bounds_agree_with_the_decision() -> None:
    canary, live = paired_streams(np.array([0.53, 0.27, 0.2]), LIVE_MIX, 1, 5000, seed=17)
    for margin in (0.005, 0.01, 0.03, 0.05, 0.2):
        check = PairedDifference(CLASSES, margin=margin).update_many(canary[0], live[0])
        lower, upper = check.distance_bounds
        assert lower <= check.distance <= upper
        decision = "no_go" if lower > margin else "go" if upper < margin else "undecided"
        assert check.decision == decision, margin


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: PairedDifference(CLASSES).update("drawing", "invoice"), "unknown class"),
        (lambda: PairedDifference(CLASSES).update(3, 0), r"\[0, 3\)"),
        (lambda: PairedDifference(CLASSES).update_many([0, 1], [0]), "one answer each"),
        (lambda: PairedDifference(["only"]), "two distinct"),
        (lambda: PairedDifference(CLASSES, margin=-0.1), "margin"),
    ],
)
def test_misuse_is_refused_with_a_clear_message(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]
