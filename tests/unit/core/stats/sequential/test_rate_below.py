"""Tests of monitor.core.stats.sequential.rate_below: validity by simulation, paths = the check read step by step."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.core.stats.sequential.rate_below import RateBelow

from ..streams import ALPHA, allowance, ever

STREAMS = 400
STEPS = 2000


def test_rate_check_at_the_maximum_errs_either_way_at_most_alpha() -> None:
    events = (np.random.default_rng(3).random((STREAMS, STEPS)) < 0.2).astype(np.float64)
    paths = RateBelow.decision_paths(events, max_rate=0.2, alpha=ALPHA)
    assert ever(paths.no_go) <= allowance(STREAMS)
    assert ever(paths.go) <= allowance(STREAMS)


def test_rate_decision_paths_equal_the_check() -> None:
    events = (np.random.default_rng(12).random((2, 600)) < 0.12).astype(np.float64)
    paths = RateBelow.decision_paths(events, max_rate=0.2)
    for stream in range(2):
        check = RateBelow(max_rate=0.2)
        for t in range(600):
            check.update(float(events[stream, t]))
            expected = "no_go" if paths.no_go[stream, t] else "go" if paths.go[stream, t] else "undecided"
            assert check.decision == expected, (stream, t)
    assert paths.go.any()


def test_rate_explanation() -> None:
    rate = RateBelow(max_rate=0.2).update_many(np.random.default_rng(18).random(3000) < 0.3)
    assert rate.decision == "no_go"
    assert rate.explain().startswith("canary and live disagree on 3")
    assert rate.evidence()["e_value_no_go"] >= 1 / ALPHA
    assert "no paired requests yet" in RateBelow().explain()


def test_evidence_stays_finite_when_the_e_process_is_far_below_one() -> None:
    """A long stream far on the 'go' side gives a very negative log e-value for 'no_go': p must be 1, not an error."""
    check = RateBelow(max_rate=0.2, alpha=0.05)
    check.update_many([0.0] * 200_000)
    facts = check.evidence()
    assert facts["p_value_no_go"] == 1.0
    assert facts["decision"] == "go"
    assert "0" in check.explain()


def test_a_rate_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="max_rate"):
        RateBelow(max_rate=0.0)
