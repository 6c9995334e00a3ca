"""Tests of monitor.core.stats.drift: against Evidently 0.7 and scipy on the same data, bounds, properties."""

from __future__ import annotations

import doctest

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import ks_2samp
from scipy.stats import wasserstein_distance as scipy_wasserstein

import monitor.core.stats.drift
from monitor.core.state.codec import decode, encode
from monitor.core.stats.drift import (
    Summary,
    bin_counts,
    bin_widths,
    exact_sum,
    js_distance,
    ks_statistic,
    psi,
    quantile_edges,
    tail_contribution,
    wasserstein_distance,
    wasserstein_norm,
)

evidently_stattests = pytest.importorskip("evidently.legacy.calculations.stattests")
ColumnType = pytest.importorskip("evidently.legacy.core").ColumnType

property_settings = settings(deadline=None, max_examples=200)


def evidently_score(test: object, reference: pd.Series, current: pd.Series, kind: object) -> float:
    result = test(reference, current, kind, None)  # type: ignore[operator]
    return float(result.drift_score)


def ecdf_gap(first: np.ndarray, second: np.ndarray) -> float:
    """The two-sample KS statistic by its definition (scipy's p-value is not wanted on tiny samples)."""
    points = np.union1d(first, second)
    f = np.searchsorted(np.sort(first), points, side="right") / first.size
    g = np.searchsorted(np.sort(second), points, side="right") / second.size
    return float(np.max(np.abs(f - g)))


def binned(reference: np.ndarray, current: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reference-quantile edges and both samples' counts over them (what the streaming state keeps)."""
    edges = quantile_edges(reference, bins)
    return edges, bin_counts(edges, reference), bin_counts(edges, current)


def test_doctests() -> None:
    assert doctest.testmod(monitor.core.stats.drift).failed == 0


# -- exact: equal to Evidently to 1e-6 ------------------------------------------------------------

CATEGORICAL_CASES = [
    (["a"] * 50 + ["b"] * 30 + ["c"] * 20, ["a"] * 30 + ["b"] * 30 + ["c"] * 40),
    (["a"] * 90 + ["b"] * 10, ["a"] * 40 + ["b"] * 40 + ["new"] * 20),  # unseen category in current
    (["x"] * 5 + ["y"] * 95, ["y"] * 100),  # a category missing from current
]


@pytest.mark.parametrize(("reference", "current"), CATEGORICAL_CASES)
def test_categorical_psi_and_js_equal_evidently(reference: list[str], current: list[str]) -> None:
    keys = sorted(set(reference) | set(current))
    ref_counts = [reference.count(k) for k in keys]
    cur_counts = [current.count(k) for k in keys]
    ref, cur = pd.Series(reference), pd.Series(current)
    expected_psi = evidently_score(evidently_stattests.psi_stat_test, ref, cur, ColumnType.Categorical)
    expected_js = evidently_score(evidently_stattests.jensenshannon_stat_test, ref, cur, ColumnType.Categorical)
    assert psi(ref_counts, cur_counts) == pytest.approx(expected_psi, abs=1e-6)
    assert js_distance(ref_counts, cur_counts) == pytest.approx(expected_js, abs=1e-6)


@pytest.mark.parametrize("shift", [0.0, 0.3, 1.5])
def test_numeric_psi_on_evidently_bins_equals_evidently(shift: float) -> None:
    rng = np.random.default_rng(7)
    reference, current = rng.normal(0, 1, 5000), rng.normal(shift, 1.2, 3000)
    # Evidently bins numeric PSI with Sturges' edges over both samples; the same bins here give the same PSI.
    edges = np.histogram_bin_edges(np.concatenate([reference, current]), bins="sturges")
    ref_counts, cur_counts = np.histogram(reference, edges)[0], np.histogram(current, edges)[0]
    expected = evidently_score(
        evidently_stattests.psi_stat_test, pd.Series(reference), pd.Series(current), ColumnType.Numerical
    )
    assert psi(ref_counts, cur_counts) == pytest.approx(expected, abs=1e-6)


def test_summary_std_is_evidently_norm() -> None:
    rng = np.random.default_rng(3)
    reference = rng.lognormal(0, 1, 10_000)
    summary = Summary()
    for chunk in np.array_split(reference, 7):
        summary.update_many(chunk)
    assert summary.count == reference.size
    assert summary.mean == pytest.approx(reference.mean(), rel=1e-12)
    assert wasserstein_norm(summary.std) == pytest.approx(max(float(np.std(reference)), 0.001), rel=1e-9)


# -- binned: within the stated bound --------------------------------------------------------------

SHAPES = [
    ("same", lambda rng: (rng.normal(0, 1, 20_000), rng.normal(0, 1, 8_000))),
    ("shifted", lambda rng: (rng.normal(0, 1, 20_000), rng.normal(0.4, 1, 8_000))),
    ("wider", lambda rng: (rng.normal(0, 1, 20_000), rng.normal(0, 2.5, 8_000))),
    ("skewed", lambda rng: (rng.exponential(1, 20_000), rng.exponential(1.3, 8_000) - 0.2)),
    ("discrete", lambda rng: (rng.integers(0, 7, 20_000).astype(float), rng.integers(0, 9, 8_000).astype(float))),
]


@pytest.mark.parametrize(("name", "make"), SHAPES)
@pytest.mark.parametrize("bins", [10, 100])
def test_binned_ks_and_wasserstein_hold_the_exact_values(name: str, make: object, bins: int) -> None:
    rng = np.random.default_rng(len(name) * bins)
    reference, current = make(rng)  # type: ignore[operator]
    edges, ref_counts, cur_counts = binned(reference, current, bins)
    ks = ks_statistic(ref_counts, cur_counts)
    exact_ks = ks_2samp(reference, current).statistic
    assert exact_ks == pytest.approx(ecdf_gap(reference, current), abs=1e-12)
    assert ks.lower - 1e-12 <= exact_ks <= ks.upper + 1e-12
    # the simple form of the bound: the largest smaller share of one bin
    p, q = ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum()
    assert ks.upper - ks.value <= np.max(np.minimum(p, q)) + 1e-12
    widths = bin_widths(edges, min(reference.min(), current.min()), max(reference.max(), current.max()))
    norm = wasserstein_norm(float(np.std(reference)))
    wd = wasserstein_distance(ref_counts, cur_counts, widths, norm)
    expected = evidently_score(
        evidently_stattests.wasserstein_stat_test, pd.Series(reference), pd.Series(current), ColumnType.Numerical
    )
    assert wd.lower - 1e-9 <= expected <= wd.upper + 1e-9
    assert abs(wd.value - expected) <= wd.error_bound + 1e-9
    assert wd.error_bound <= float(np.sum(widths * (p + q))) / norm + 1e-9


def test_more_bins_tighten_the_wasserstein_bound() -> None:
    rng = np.random.default_rng(11)
    reference, current = rng.normal(0, 1, 50_000), rng.normal(0.1, 1, 50_000)
    bounds = []
    for bins in (10, 100, 1000):
        edges, ref_counts, cur_counts = binned(reference, current, bins)
        widths = bin_widths(edges, min(reference.min(), current.min()), max(reference.max(), current.max()))
        bounds.append(wasserstein_distance(ref_counts, cur_counts, widths, float(np.std(reference))).error_bound)
    assert bounds[0] > bounds[1] > bounds[2]


# -- properties -----------------------------------------------------------------------------------

counts = st.lists(st.integers(min_value=0, max_value=500), min_size=2, max_size=15)
samples = st.lists(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False), min_size=1, max_size=300
)


@property_settings
@given(counts)
def test_drift_of_counts_against_themselves_is_zero(values: list[int]) -> None:
    assert psi(values, values) == pytest.approx(0.0, abs=1e-12)
    assert js_distance(values, values) == pytest.approx(0.0, abs=1e-7)
    assert ks_statistic(values, values).value == 0.0
    widths = np.ones(len(values))
    assert wasserstein_distance(values, values, widths).value == pytest.approx(0.0, abs=1e-12)


@property_settings
@given(samples, st.integers(min_value=1, max_value=50))
def test_a_sample_against_itself_drifts_zero(values: list[float], bins: int) -> None:
    data = np.array(values)
    edges, ref_counts, cur_counts = binned(data, data, bins)
    widths = bin_widths(edges, float(data.min()), float(data.max()))
    assert ks_statistic(ref_counts, cur_counts).value == 0.0
    estimate = wasserstein_distance(ref_counts, cur_counts, widths, wasserstein_norm(float(np.std(data))))
    assert estimate.value == pytest.approx(0.0, abs=1e-9)
    assert psi(ref_counts, cur_counts) == pytest.approx(0.0, abs=1e-12)


@property_settings
@given(st.integers(min_value=2, max_value=15).flatmap(
    lambda n: st.tuples(*[st.lists(st.integers(0, 500), min_size=n, max_size=n)] * 2)
))
def test_symmetric_statistics(pair: tuple[list[int], list[int]]) -> None:
    first, second = pair
    assert psi(first, second) == pytest.approx(psi(second, first), rel=1e-9, abs=1e-12)
    assert js_distance(first, second) == pytest.approx(js_distance(second, first), abs=1e-12)
    assert ks_statistic(first, second).value == pytest.approx(ks_statistic(second, first).value, abs=1e-12)
    widths = np.linspace(0.5, 2.0, len(first))
    forward, backward = wasserstein_distance(first, second, widths), wasserstein_distance(second, first, widths)
    assert forward.value == pytest.approx(backward.value, abs=1e-9)
    assert forward.upper == pytest.approx(backward.upper, abs=1e-9)


@property_settings
@given(samples, samples)
def test_binned_bounds_hold_for_any_samples(reference: list[float], current: list[float]) -> None:
    ref, cur = np.array(reference), np.array(current)
    edges, ref_counts, cur_counts = binned(ref, cur, 8)
    ks = ks_statistic(ref_counts, cur_counts)
    assert ks.lower - 1e-9 <= ecdf_gap(ref, cur) <= ks.upper + 1e-9
    widths = bin_widths(edges, min(ref.min(), cur.min()), max(ref.max(), cur.max()))
    wd = wasserstein_distance(ref_counts, cur_counts, widths)
    exact = scipy_wasserstein(ref, cur)
    scale = max(1.0, abs(exact))
    assert wd.lower - 1e-9 * scale <= exact <= wd.upper + 1e-9 * scale


@property_settings
@given(samples, samples, st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=2, max_size=20))
def test_merged_state_equals_state_of_union(first: list[float], second: list[float], edge_values: list[float]) -> None:
    edges = np.unique(np.array(edge_values, dtype=np.float64))
    a, b = np.array(first), np.array(second)
    assert np.array_equal(bin_counts(edges, a) + bin_counts(edges, b), bin_counts(edges, np.concatenate([a, b])))
    merged = Summary().update_many(a).merge(Summary().update_many(b))
    union = Summary().update_many(np.concatenate([a, b]))
    assert merged.count == union.count
    assert (merged.min, merged.max) == (union.min, union.max)
    assert (merged.total, merged.total_squares) == (union.total, union.total_squares)
    assert merged.mean == union.mean and merged.m2 == union.m2
    assert decode(encode(merged), Summary) == merged


def test_empty_sides_are_no_evidence() -> None:
    assert psi([0, 0, 0], [1, 2, 3]) == 0.0
    assert js_distance([1, 2], [0, 0]) == 0.0
    assert ks_statistic([0, 0], [3, 1]).value == 0.0
    assert wasserstein_distance([0, 0], [1, 1], [1.0, 1.0]).value == 0.0


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="same bins"):
        psi([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="non-negative"):
        js_distance([1, -1], [1, 1])
    with pytest.raises(ValueError, match="no finite values"):
        quantile_edges([float("nan")], 10)
    with pytest.raises(ValueError, match="width"):
        wasserstein_distance([1, 1], [1, 1], [1.0])


def test_tail_contribution_is_the_exact_integral_beyond_the_edge() -> None:
    # Reference all at or above 0; current has values below: below the first edge F is 0 and the
    # integral of |F - G| there is the mean of (0 - x) over the current values below it.
    current = np.array([-3.0, -1.0, 0.0, 0.5, 2.0])
    below = current[current <= 0.0]
    exact = float(np.sum(0.0 - below) / current.size)
    assert tail_contribution(0.0, below.size, exact_sum(below), current.size, below=True) == pytest.approx(exact)
    above = current[current > 1.0]
    assert tail_contribution(1.0, above.size, exact_sum(above), current.size, below=False) == pytest.approx(0.2)
