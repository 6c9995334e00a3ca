"""Tests of monitor.core.stats.confidence_sequence: coverage at all times by simulation, batch = one-by-one, properties.

Simulations read the bounds after every step of every stream (see tests/unit/core/stats/streams.py
for the allowance); the properties are checked with hypothesis.
"""

from __future__ import annotations

import doctest
import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import monitor.core.stats.confidence_sequence
from monitor.core.state.codec import clone
from monitor.core.stats.confidence_sequence import (
    DEFAULT_BETS,
    BoundedMeanCS,
    MeanSums,
    cs_bounds,
    log_e_value,
    running_sums,
)

from .streams import ALPHA, FloatArray, allowance, ever, three_point

STREAMS = 400
STEPS = 2000

property_settings = settings(deadline=None, max_examples=60)


def bernoulli(size: tuple[int, ...], seed: int) -> FloatArray:
    return (np.random.default_rng(seed).random(size) < 0.3).astype(np.float64)


def beta(size: tuple[int, ...], seed: int) -> FloatArray:
    return np.random.default_rng(seed).beta(2.0, 5.0, size)


def three_point_values(size: tuple[int, ...], seed: int) -> FloatArray:
    return three_point(0.1, 0.3, size, seed)


@pytest.mark.parametrize(
    ("lo", "hi", "sample", "mean"),
    [(0.0, 1.0, bernoulli, 0.3), (-1.0, 1.0, three_point_values, 0.2), (0.0, 1.0, beta, 2.0 / 7.0)],
    ids=["bernoulli", "three-point", "beta"],
)
def test_confidence_sequence_covers_the_mean_at_all_times(
    lo: float, hi: float, sample: Callable[[tuple[int, ...], int], FloatArray], mean: float
) -> None:
    values = sample((STREAMS, STEPS), 6)
    sums = running_sums(values, lo, hi)
    threshold = math.log(2 / ALPHA)
    # By monotonicity in the null value, "the CS misses the mean" is exactly
    # "an e-process at the mean reached 2 / alpha", which is cheap to evaluate.
    misses = (log_e_value(sums, mean, "above") >= threshold) | (log_e_value(sums, mean, "below") >= threshold)
    assert ever(misses) <= allowance(STREAMS)
    # And directly from the bounds, on a smaller part of the paths.
    part = sums.at((slice(0, 100), slice(0, 300)))
    lower, upper = cs_bounds(part, ALPHA, lo, hi)
    assert np.array_equal((lower > mean) | (upper < mean), misses[:100, :300])


def test_e_process_is_a_supermartingale_in_simulation() -> None:
    # At the null's boundary, the e-process's mean must stay <= 1 at every fixed time.
    streams = 4000
    values = (np.random.default_rng(7).random((streams, 1000)) < 0.3).astype(np.float64)
    sums = running_sums(values, 0.0, 1.0)
    for side in ("above", "below"):
        e_values = np.exp(log_e_value(sums, 0.3, side))  # type: ignore[arg-type]
        assert np.all(e_values >= 0)
        for t in (0, 9, 99, 999):
            column = e_values[:, t]
            standard_error = column.std(ddof=1) / math.sqrt(streams)
            assert column.mean() <= 1 + 3 * standard_error + 1e-12, (side, t)


def test_batch_bounds_equal_one_by_one_updates_exactly() -> None:
    values = three_point(0.1, 0.2, (250,), seed=10)
    sums = running_sums(values, -1.0, 1.0)
    lower, upper = cs_bounds(sums, ALPHA, -1.0, 1.0)
    cs = BoundedMeanCS(-1.0, 1.0, ALPHA)
    for t, value in enumerate(values):
        cs.update(float(value))
        assert cs.lower == lower[t] and cs.upper == upper[t], t
        assert cs.e_value_above(0.0) == math.exp(float(log_e_value(sums.at(t), 0.0, "above")))


ranges = st.tuples(
    st.floats(min_value=-100, max_value=100, allow_nan=False), st.floats(min_value=0.01, max_value=100)
).map(lambda pair: (pair[0], pair[0] + pair[1]))


@st.composite
def bounded_streams(draw: st.DrawFn) -> tuple[float, float, list[float]]:
    lo, hi = draw(ranges)
    fractions = draw(st.lists(st.floats(min_value=0, max_value=1), min_size=0, max_size=60))
    return lo, hi, [min(max(lo + f * (hi - lo), lo), hi) for f in fractions]


@property_settings
@given(bounded_streams(), st.sampled_from([0.01, 0.05, 0.2]))
def test_bounds_are_ordered_and_within_the_range(stream: tuple[float, float, list[float]], alpha: float) -> None:
    lo, hi, values = stream
    if not values:
        return
    sums = running_sums(values, lo, hi)
    lower, upper = cs_bounds(sums, alpha, lo, hi)
    assert np.all(lo <= lower) and np.all(upper <= hi)
    assert np.all(lower <= upper)
    means = np.cumsum(values) / np.arange(1, len(values) + 1)
    # The interval holds the sample mean unless that sits at the very edge of the range.
    inside = (lower <= means + 1e-9 * (hi - lo)) & (means - 1e-9 * (hi - lo) <= upper)
    assert np.all(inside)


@property_settings
@given(bounded_streams(), st.integers(min_value=0, max_value=60))
def test_update_many_equals_one_by_one_updates(stream: tuple[float, float, list[float]], cut: int) -> None:
    lo, hi, values = stream
    one_by_one = BoundedMeanCS(lo, hi)
    for value in values:
        one_by_one.update(value)
    batched = BoundedMeanCS(lo, hi).update_many(values[:cut]).update_many(values[cut:])
    for mine, theirs in zip(one_by_one.sums, batched.sums, strict=True):
        assert np.array_equal(mine, theirs)
    assert (one_by_one.lower, one_by_one.upper) == (batched.lower, batched.upper)


@property_settings
@given(bounded_streams(), bounded_streams())
def test_merge_adds_the_states(
    first: tuple[float, float, list[float]], second: tuple[float, float, list[float]]
) -> None:
    lo, hi, values = first
    others = [lo + (v - second[0]) / (second[1] - second[0]) * (hi - lo) for v in second[2]]
    others = [min(max(v, lo), hi) for v in others]
    a, b = BoundedMeanCS(lo, hi).update_many(values), BoundedMeanCS(lo, hi).update_many(others)
    a_sums, b_sums = a.sums, b.sums
    merged = BoundedMeanCS(lo, hi).merge(a).merge(b)
    reverse = BoundedMeanCS(lo, hi).merge(b).merge(a)
    assert merged.n == len(values) + len(others)
    for total, mine, theirs, left, right in zip(merged.sums, a_sums, b_sums, merged.sums, reverse.sums, strict=True):
        assert total == pytest.approx(float(mine + theirs), rel=1e-12, abs=1e-12)
        assert left == pytest.approx(float(right), rel=1e-12, abs=1e-12)
    concatenated = BoundedMeanCS(lo, hi).update_many(values + others)
    assert merged.n == concatenated.n
    assert merged.mean == pytest.approx(concatenated.mean, rel=1e-9, abs=1e-9 * (hi - lo))
    empty = BoundedMeanCS(lo, hi)
    assert a.merge(empty).sums == a_sums


def test_merged_replicas_keep_the_guarantee() -> None:
    # Two replicas, each centring on its own running mean, merged at the end of every step.
    values = (np.random.default_rng(14).random((STREAMS, 2, 1000)) < 0.3).astype(np.float64)
    halves = running_sums(values, 0.0, 1.0)
    merged = MeanSums(*(part[:, 0, :] + part[:, 1, :] for part in halves))
    threshold = math.log(2 / ALPHA)
    misses = (log_e_value(merged, 0.3, "above") >= threshold) | (log_e_value(merged, 0.3, "below") >= threshold)
    assert ever(misses) <= allowance(STREAMS)


@settings(deadline=None, max_examples=15)
@given(st.floats(min_value=0.02, max_value=0.98))
def test_intervals_shrink_in_expectation(p: float) -> None:
    values = (np.random.default_rng(15).random((40, 1600)) < p).astype(np.float64)
    lower, upper = cs_bounds(running_sums(values, 0.0, 1.0).at((slice(None), [24, 99, 399, 1599])), ALPHA, 0.0, 1.0)
    widths = (upper - lower).mean(axis=0)
    assert np.all(np.diff(widths) < 0), widths


@property_settings
@given(bounded_streams(), st.floats(min_value=0, max_value=1), st.floats(min_value=0, max_value=1))
def test_e_values_are_monotone_in_the_null(stream: tuple[float, float, list[float]], a: float, b: float) -> None:
    lo, hi, values = stream
    sums = running_sums([*values, lo], lo, hi).at(-1)
    small, large = sorted((lo + a * (hi - lo), lo + b * (hi - lo)))
    assert log_e_value(sums, small, "above") >= log_e_value(sums, large, "above")
    assert log_e_value(sums, small, "below") <= log_e_value(sums, large, "below")


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -1.5, 1.0001])
def test_bad_values_are_refused_and_leave_the_state_alone(bad: float) -> None:
    cs = BoundedMeanCS(-1.0, 1.0).update_many([0.5, -0.5])
    before = clone(cs)
    with pytest.raises(ValueError, match="within"):
        cs.update(bad)
    with pytest.raises(ValueError, match="within"):
        cs.update_many([0.0, bad])
    assert cs == before


def test_default_bets_are_the_documented_grid() -> None:
    assert len(DEFAULT_BETS.fractions) == 8
    assert DEFAULT_BETS.fractions[0] == pytest.approx(0.02) and DEFAULT_BETS.fractions[-1] == pytest.approx(0.9)


def test_docstring_examples_run() -> None:
    outcome = doctest.testmod(monitor.core.stats.confidence_sequence, optionflags=doctest.ELLIPSIS)
    assert outcome.failed == 0
