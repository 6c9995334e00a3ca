"""Tests of monitor.core.stats.sequential.paired_accuracy: validity by simulation, paths = the check step by step."""

from __future__ import annotations

import pytest

from monitor.core.stats.sequential.paired_accuracy import PairedAccuracy

from ..streams import ALPHA, allowance, ever, three_point

STREAMS = 400
STEPS = 2000


def test_accuracy_check_at_the_margin_errs_either_way_at_most_alpha() -> None:
    # canary 2 points less accurate than live, exactly the margin.
    differences = three_point(p_minus=0.10, p_plus=0.08, size=(STREAMS, STEPS), seed=4)
    paths = PairedAccuracy.decision_paths(differences, margin=0.02, alpha=ALPHA)
    assert ever(paths.no_go) <= allowance(STREAMS)
    assert ever(paths.go) <= allowance(STREAMS)


def test_accuracy_check_on_equal_models_never_says_no_go_and_eventually_says_go() -> None:
    differences = three_point(p_minus=0.05, p_plus=0.05, size=(200, 4000), seed=5)
    paths = PairedAccuracy.decision_paths(differences, margin=0.02, alpha=ALPHA)
    assert ever(paths.no_go) <= allowance(200)
    assert ever(paths.go) > 0.5


def test_accuracy_decision_paths_equal_the_check() -> None:
    differences = three_point(0.02, 0.04, (2, 600), seed=13)
    paths = PairedAccuracy.decision_paths(differences, margin=0.02)
    for stream in range(2):
        check = PairedAccuracy(margin=0.02)
        for t in range(600):
            canary_right = float(differences[stream, t] >= 0)
            check.update(canary_right, canary_right - float(differences[stream, t]))
            expected = "no_go" if paths.no_go[stream, t] else "go" if paths.go[stream, t] else "undecided"
            assert check.decision == expected, (stream, t)
    assert paths.go.any()


def test_accuracy_explanation() -> None:
    accuracy = PairedAccuracy(margin=0.02)
    assert "no labelled requests yet" in accuracy.explain()
    accuracy.update(True, True).update(False, True)
    assert accuracy.decision == "undecided"
    assert accuracy.explain().startswith("not decided after 2 labelled requests")


def test_correctness_must_be_zero_or_one() -> None:
    with pytest.raises(ValueError, match="0 or 1"):
        PairedAccuracy().update(0.5, 1)
