"""Tests of monitor.core.stats.divergence: oracles (scipy, the PSI definition), properties, edges."""

from __future__ import annotations

import dataclasses
import doctest
import math

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency, chisquare, entropy

import monitor.core.stats
import monitor.core.stats.divergence
from monitor.core.stats.divergence import (
    Chi2Result,
    chi2_goodness_of_fit,
    chi2_homogeneity,
    entropy_bits,
    js_distance,
    largest_share,
    psi,
    shares,
)

MAX_COUNT = 1000

# scipy's first calls can be slow; a timing deadline would only make these flaky.
property_settings = settings(deadline=None)


@st.composite
def count_pairs(draw: st.DrawFn) -> tuple[list[int], list[int]]:
    """Two count vectors over the same 2..12 classes (all-zero vectors included)."""
    size = draw(st.integers(min_value=2, max_value=12))
    counts = st.lists(st.integers(min_value=0, max_value=MAX_COUNT), min_size=size, max_size=size)
    return draw(counts), draw(counts)


count_vectors = st.integers(min_value=2, max_value=12).flatmap(
    lambda size: st.lists(
        st.integers(min_value=0, max_value=MAX_COUNT), min_size=size, max_size=size
    )
)
scale_factors = st.integers(min_value=2, max_value=1000)


def proportional(p: list[int], q: list[int]) -> bool:
    """Whether p and q normalise to the same distribution (an empty side counts as yes).

    Exact integer arithmetic: p_i / sum(p) == q_i / sum(q) for every class.
    """
    p_total, q_total = sum(p), sum(q)
    return all(p_i * q_total == q_i * p_total for p_i, q_i in zip(p, q, strict=True))


def reference_psi(expected: list[int], actual: list[int], floor: float) -> float:
    """PSI written out from its definition, one class at a time."""
    # PSI = sum_i (a_i - e_i) * ln(a_i / e_i), with a_i, e_i the actual and expected
    # shares of class i, each raised to at least `floor`.
    expected_total, actual_total = sum(expected), sum(actual)
    value = 0.0
    for expected_count, actual_count in zip(expected, actual, strict=True):
        e = max(expected_count / expected_total, floor)
        a = max(actual_count / actual_total, floor)
        value += (a - e) * math.log(a / e)
    return value


# --- oracles ----------------------------------------------------------------------------


@property_settings
@given(count_pairs())
@example(([3, 0], [0, 5]))
@example(([1, 0, 0], [1, 1, 1]))
def test_js_distance_matches_scipy(pair: tuple[list[int], list[int]]) -> None:
    p, q = pair
    assume(sum(p) > 0 and sum(q) > 0)
    # scipy takes the square root of a divergence that rounding can leave a hair
    # below zero for (nearly) equal distributions, which gives NaN there.
    with np.errstate(invalid="ignore"):
        scipy_distance = float(jensenshannon(p, q, base=2))
    if math.isnan(scipy_distance):
        assert js_distance(p, q) < 1e-7
    else:
        assert js_distance(p, q) == pytest.approx(scipy_distance, abs=1e-7)


@property_settings
@given(count_pairs(), st.sampled_from([1e-4, 1e-3, 1e-12]))
@example(([0, 10, 90], [5, 0, 95]), 1e-4)
def test_psi_matches_its_definition(pair: tuple[list[int], list[int]], floor: float) -> None:
    expected, actual = pair
    assume(sum(expected) > 0 and sum(actual) > 0)
    assert psi(expected, actual, floor=floor) == pytest.approx(
        reference_psi(expected, actual, floor), rel=1e-9, abs=1e-12
    )


@property_settings
@given(count_pairs())
def test_chi2_homogeneity_matches_scipy(pair: tuple[list[int], list[int]]) -> None:
    a, b = pair
    table = np.array([a, b])
    table = table[:, table.sum(axis=0) > 0]
    assume(sum(a) > 0 and sum(b) > 0 and table.shape[1] >= 2)
    scipy_result = chi2_contingency(table, correction=False)
    result = chi2_homogeneity(a, b)
    assert result.statistic == pytest.approx(scipy_result.statistic, rel=1e-9, abs=1e-12)
    assert result.dof == scipy_result.dof
    assert result.p_value == pytest.approx(scipy_result.pvalue, rel=1e-9, abs=1e-12)


@property_settings
@given(
    st.integers(min_value=2, max_value=12).flatmap(
        lambda size: st.tuples(
            st.lists(st.integers(0, MAX_COUNT), min_size=size, max_size=size),
            st.lists(st.integers(1, 100), min_size=size, max_size=size),
        )
    )
)
def test_chi2_goodness_of_fit_matches_scipy(case: tuple[list[int], list[int]]) -> None:
    counts, weights = case
    assume(sum(counts) > 0)
    f_exp = np.array(weights) / sum(weights) * sum(counts)
    scipy_result = chisquare(counts, f_exp=f_exp)
    result = chi2_goodness_of_fit(counts, weights)
    assert result.statistic == pytest.approx(scipy_result.statistic, rel=1e-9, abs=1e-12)
    assert result.dof == len(counts) - 1
    assert result.p_value == pytest.approx(scipy_result.pvalue, rel=1e-9, abs=1e-12)


@property_settings
@given(count_vectors)
def test_entropy_bits_matches_scipy(counts: list[int]) -> None:
    assume(sum(counts) > 0)
    assert entropy_bits(counts) == pytest.approx(entropy(counts, base=2), rel=1e-9, abs=1e-12)


# --- properties -------------------------------------------------------------------------


@property_settings
@given(count_pairs())
@example(([0, 0], [0, 0]))
@example(([0, 0, 0], [1, 2, 3]))
def test_js_distance_is_symmetric_and_within_unit_interval(
    pair: tuple[list[int], list[int]],
) -> None:
    p, q = pair
    distance = js_distance(p, q)
    assert 0.0 <= distance <= 1.0
    assert distance == pytest.approx(js_distance(q, p), abs=1e-12)


@property_settings
@given(count_pairs())
@example(([0, 0], [0, 0]))
@example(([0, 0, 0], [4, 0, 1]))
@example(([1, 2, 3], [2, 4, 6]))
def test_js_distance_is_zero_exactly_for_proportional_counts(
    pair: tuple[list[int], list[int]],
) -> None:
    p, q = pair
    # Distinct distributions over counts <= MAX_COUNT differ by at least
    # 2 / (sum(p) * sum(q)) in L1, which bounds their JS distance above ~5.9e-9.
    if proportional(p, q):
        assert js_distance(p, q) < 1e-9
    else:
        assert js_distance(p, q) > 1e-9


@property_settings
@given(count_pairs(), scale_factors)
def test_js_distance_and_psi_ignore_scale(pair: tuple[list[int], list[int]], factor: int) -> None:
    p, q = pair
    scaled_p = [factor * count for count in p]
    assert js_distance(scaled_p, q) == pytest.approx(js_distance(p, q), rel=1e-9, abs=1e-12)
    assert psi(scaled_p, q) == pytest.approx(psi(p, q), rel=1e-9, abs=1e-12)
    assert psi(q, scaled_p) == pytest.approx(psi(q, p), rel=1e-9, abs=1e-12)


@property_settings
@given(count_pairs())
@example(([0, 0], [0, 0]))
@example(([0, 0, 0], [1, 2, 3]))
def test_psi_is_non_negative_and_symmetric(pair: tuple[list[int], list[int]]) -> None:
    expected, actual = pair
    value = psi(expected, actual)
    assert value >= 0.0
    assert value == pytest.approx(psi(actual, expected), rel=1e-12, abs=1e-15)


@property_settings
@given(count_pairs())
@example(([0, 0], [0, 0]))
@example(([1, 0, 11000], [0, 1, 11000]))
@example(([1, 2, 3], [2, 4, 6]))
def test_psi_is_zero_exactly_for_proportional_counts(pair: tuple[list[int], list[int]]) -> None:
    expected, actual = pair
    # The default floor lets two distributions that differ only in classes under
    # 1e-4 on both sides score 0 (see the test below). A floor under every possible
    # non-zero share separates all of them: by Pinsker, PSI >= L1^2, and
    # L1 >= 2 / (sum(p) * sum(q)), so PSI is above ~1.9e-16 for counts <= MAX_COUNT.
    value = psi(expected, actual, floor=1e-12)
    if proportional(expected, actual):
        assert value < 1e-18
    else:
        assert value > 1e-18


@property_settings
@given(count_pairs())
@example(([0, 0], [0, 0]))
@example(([0, 0], [3, 1]))
def test_chi2_p_values_are_probabilities(pair: tuple[list[int], list[int]]) -> None:
    a, b = pair
    homogeneity = chi2_homogeneity(a, b)
    assert 0.0 <= homogeneity.p_value <= 1.0
    assert homogeneity.statistic >= 0.0
    fit = chi2_goodness_of_fit(a, b)
    assert 0.0 <= fit.p_value <= 1.0
    assert fit.statistic >= 0.0


@property_settings
@given(count_pairs())
def test_chi2_homogeneity_is_symmetric(pair: tuple[list[int], list[int]]) -> None:
    a, b = pair
    forward, backward = chi2_homogeneity(a, b), chi2_homogeneity(b, a)
    assert forward.dof == backward.dof
    assert forward.statistic == pytest.approx(backward.statistic, rel=1e-9, abs=1e-12)
    assert forward.p_value == pytest.approx(backward.p_value, rel=1e-9, abs=1e-12)


@property_settings
@given(count_vectors, scale_factors)
def test_chi2_p_value_is_one_for_proportional_counts(counts: list[int], factor: int) -> None:
    assume(sum(counts) > 0)
    scaled = [factor * count for count in counts]
    assert chi2_homogeneity(counts, scaled).p_value == pytest.approx(1.0, abs=1e-9)
    assert chi2_goodness_of_fit(scaled, counts).p_value == pytest.approx(1.0, abs=1e-9)


@property_settings
@given(count_vectors)
@example([0, 0])
@example([1, 1, 1, 1])
def test_entropy_bits_is_between_zero_and_log2_of_classes(counts: list[int]) -> None:
    value = entropy_bits(counts)
    assert -1e-12 <= value <= math.log2(len(counts)) + 1e-12


@property_settings
@given(count_vectors)
@example([0, 0])
def test_shares_sum_to_one_and_largest_share_is_their_maximum(counts: list[int]) -> None:
    class_shares = shares(counts)
    top, top_share = largest_share(counts)
    if sum(counts) == 0:
        assert class_shares.tolist() == [0.0] * len(counts)
        assert (top, top_share) == (-1, 0.0)
    else:
        assert class_shares.sum() == pytest.approx(1.0, abs=1e-12)
        assert class_shares == pytest.approx(np.array(counts) / sum(counts))
        assert top_share == class_shares.max()
        assert counts[top] == max(counts)
        assert counts.index(max(counts)) == top


# --- edges and documented choices -------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "q"), [([0, 0], [0, 0]), ([0, 0, 0], [1, 2, 3]), ([4, 1], [0, 0])]
)
def test_an_empty_side_is_no_evidence_of_difference(p: list[int], q: list[int]) -> None:
    assert js_distance(p, q) == 0.0
    assert psi(p, q) == 0.0
    assert chi2_homogeneity(p, q) == Chi2Result(statistic=0.0, dof=0, p_value=1.0)


def test_disjoint_distributions_are_at_distance_one() -> None:
    assert js_distance([3, 0, 0], [0, 5, 2]) == pytest.approx(1.0, abs=1e-12)


def test_psi_floor_keeps_an_empty_class_finite() -> None:
    # actual shares (0.5, 0.5) against expected (1, 0 -> 1e-4), from the definition.
    expected_value = (0.5 - 1.0) * math.log(0.5 / 1.0) + (0.5 - 1e-4) * math.log(0.5 / 1e-4)
    assert psi([10, 0], [5, 5]) == pytest.approx(expected_value, rel=1e-12)


def test_psi_default_floor_ignores_classes_rare_on_both_sides() -> None:
    # Classes 0 and 1 hold 1 / 11001 (under 1e-4) on one side and nothing on the other.
    expected, actual = [1, 0, 11000], [0, 1, 11000]
    assert psi(expected, actual) == 0.0
    assert psi(expected, actual, floor=1e-12) > 0.0


def test_psi_rejects_a_floor_that_is_not_positive() -> None:
    for floor in (0.0, -1e-4, math.nan, math.inf):
        with pytest.raises(ValueError, match="floor"):
            psi([1, 2], [2, 1], floor=floor)


def test_chi2_homogeneity_drops_classes_empty_on_both_sides() -> None:
    with_empty = chi2_homogeneity([30, 0, 10, 0], [10, 0, 30, 0])
    without_empty = chi2_homogeneity([30, 10], [10, 30])
    assert with_empty == without_empty
    assert with_empty.dof == 1


def test_chi2_homogeneity_needs_two_classes_with_data() -> None:
    assert chi2_homogeneity([7, 0], [3, 0]) == Chi2Result(statistic=0.0, dof=0, p_value=1.0)


def test_goodness_of_fit_leaves_out_classes_that_cannot_occur_and_did_not() -> None:
    scipy_result = chisquare([30, 10], f_exp=[20, 20])
    result = chi2_goodness_of_fit([30, 0, 10], [0.5, 0.0, 0.5])
    assert result.dof == 1
    assert result.statistic == pytest.approx(scipy_result.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(scipy_result.pvalue, rel=1e-12)


@pytest.mark.parametrize(
    ("counts", "expected_shares"),
    [([5, 1, 3], [0.5, 0.0, 0.5]), ([1, 1], [0.0, 0.0]), ([0, 2], [1.0, 0.0])],
)
def test_goodness_of_fit_with_an_impossible_observation_has_p_zero(
    counts: list[int], expected_shares: list[float]
) -> None:
    result = chi2_goodness_of_fit(counts, expected_shares)
    assert result.statistic == math.inf
    assert result.p_value == 0.0


def test_goodness_of_fit_without_observations_is_no_evidence() -> None:
    assert chi2_goodness_of_fit([0, 0, 0], [0.2, 0.3, 0.5]) == Chi2Result(0.0, 0, 1.0)


def test_goodness_of_fit_normalises_expected_shares() -> None:
    assert chi2_goodness_of_fit([30, 10, 20], [1, 1, 2]) == chi2_goodness_of_fit(
        [30, 10, 20], [0.25, 0.25, 0.5]
    )


def test_numpy_arrays_and_float_counts_are_accepted() -> None:
    live = np.array([500, 300, 200])
    canary = np.array([0.5e6, 0.3e6, 0.2e6])
    assert js_distance(live, canary) == pytest.approx(0.0, abs=1e-9)
    assert psi(live, canary) == pytest.approx(0.0, abs=1e-12)
    assert chi2_homogeneity(live, canary).p_value == pytest.approx(1.0, abs=1e-9)


def test_results_are_plain_python_numbers() -> None:
    p, q = [5, 3, 1], [1, 3, 5]
    for value in (js_distance(p, q), psi(p, q), entropy_bits(p), largest_share(p)[1]):
        assert type(value) is float
    assert type(largest_share(p)[0]) is int
    for result in (chi2_homogeneity(p, q), chi2_goodness_of_fit(p, q)):
        assert type(result.statistic) is float
        assert type(result.dof) is int
        assert type(result.p_value) is float


def test_chi2_result_is_frozen() -> None:
    result = chi2_homogeneity([1, 2], [2, 1])
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.p_value = 0.5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        ([1, 2], [1, 2, 3], "same classes"),
        ([1, -2], [1, 2], "non-negative"),
        ([1, math.nan], [1, 2], "finite"),
        ([1, 2], [math.inf, 2], "finite"),
        ([[1, 2], [3, 4]], [[1, 2], [3, 4]], "one-dimensional"),
    ],
)
def test_malformed_counts_are_refused(first: object, second: object, message: str) -> None:
    for function in (js_distance, psi, chi2_homogeneity, chi2_goodness_of_fit):
        with pytest.raises(ValueError, match=message):
            function(first, second)  # type: ignore[arg-type]


def test_docstring_examples_run() -> None:
    outcome = doctest.testmod(monitor.core.stats.divergence)
    assert outcome.attempted > 0
    assert outcome.failed == 0


def test_package_exports_every_public_name() -> None:
    for name in monitor.core.stats.__all__:
        assert getattr(monitor.core.stats, name) is getattr(monitor.core.stats.divergence, name)
    public = {
        name
        for name, value in vars(monitor.core.stats.divergence).items()
        if not name.startswith("_")
        and getattr(value, "__module__", None) == monitor.core.stats.divergence.__name__
    }
    assert public <= set(monitor.core.stats.__all__)
