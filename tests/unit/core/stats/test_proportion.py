"""Wilson intervals and McNemar's exact test against scipy, and the coverage of the precision estimate."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import binomtest

from monitor.core.stats.proportion import mcnemar_exact, wilson_interval


@given(st.integers(min_value=1, max_value=5000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_matches_scipy(case: tuple[int, int]) -> None:
    successes, n = case
    expected = binomtest(successes, n).proportion_ci(confidence_level=0.95, method="wilson")
    lower, upper = wilson_interval(successes, n)
    assert lower == pytest.approx(expected.low, abs=1e-9)
    assert upper == pytest.approx(expected.high, abs=1e-9)
    assert 0.0 <= lower <= successes / n <= upper <= 1.0


def test_wilson_without_data_is_the_whole_range_and_refuses_nonsense() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(5, 3)


@given(st.integers(0, 300), st.integers(0, 300))
def test_mcnemar_matches_scipy_binomial(b: int, c: int) -> None:
    result = mcnemar_exact(b, c)
    if b + c == 0:
        assert (result.p_two_sided, result.p_canary_worse) == (1.0, 1.0)
        return
    assert result.p_two_sided == pytest.approx(binomtest(b, b + c, 0.5).pvalue)
    assert result.p_canary_worse == pytest.approx(binomtest(b, b + c, 0.5, alternative="less").pvalue)
    # symmetric in the two discordant counts, as a two-sided test must be
    assert result.p_two_sided == pytest.approx(mcnemar_exact(c, b).p_two_sided)


def test_precision_interval_covers_the_true_precision_in_most_streams() -> None:
    """200 simulated streams with a known true canary precision: the 95% interval covers it >= 93% of the time."""
    rng = np.random.default_rng(20261123)
    covered = 0
    streams = 200
    for _ in range(streams):
        true_precision = rng.uniform(0.6, 0.97)
        labelled = int(rng.integers(80, 600))
        correct = int(rng.binomial(labelled, true_precision))
        lower, upper = wilson_interval(correct, labelled)
        covered += lower <= true_precision <= upper
    assert covered / streams >= 0.93
