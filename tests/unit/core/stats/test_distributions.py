"""monitor.core.stats.distributions against SciPy on the same arguments, and its invariants."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import bdtr, betainc, chdtrc, gammaincc, ndtri

from monitor.core.stats.distributions import beta_i, binom_cdf, chi2_sf, gamma_q, norm_ppf

# Below this SciPy's answer is a denormal or zero, where relative error says nothing.
_SMALLEST = 1e-280


def _close(ours: float, theirs: float, rtol: float) -> bool:
    if theirs < _SMALLEST:
        return ours < _SMALLEST * 1e10
    return abs(ours - theirs) <= rtol * theirs


@settings(max_examples=400)
@given(st.integers(1, 2000), st.floats(0, 5000, allow_nan=False))
def test_chi2_sf_equals_scipy(dof: int, statistic: float) -> None:
    assert _close(chi2_sf(statistic, dof), float(chdtrc(dof, statistic)), 1e-11)


@settings(max_examples=400)
@given(st.floats(0.01, 1000), st.floats(0, 3000))
def test_gamma_q_equals_scipy_for_real_shapes(a: float, x: float) -> None:
    assert _close(gamma_q(a, x), float(gammaincc(a, x)), 1e-11)


@settings(max_examples=400)
@given(st.integers(1, 1_000_000), st.data())
def test_binom_cdf_at_one_half_equals_scipy(n: int, data: st.DataObject) -> None:
    """McNemar's test asks at p = 1/2; the prefactor's logs lose about 1e-9 relative at a
    million trials, far below anything a verdict reads."""
    k = data.draw(st.integers(0, n))
    assert _close(binom_cdf(k, n, 0.5), float(bdtr(k, n, 0.5)), 1e-8)


@settings(max_examples=300)
@given(st.integers(1, 5000), st.floats(0, 1), st.data())
def test_binom_cdf_equals_scipy_at_any_p(n: int, p: float, data: st.DataObject) -> None:
    k = data.draw(st.integers(0, n))
    assert _close(binom_cdf(k, n, p), float(bdtr(k, n, p)), 1e-9)


@settings(max_examples=300)
@given(st.floats(1e-9, 1 - 1e-9), st.floats(0.05, 2000), st.floats(0.05, 2000))
def test_beta_i_equals_scipy(x: float, a: float, b: float) -> None:
    assert _close(beta_i(x, a, b), float(betainc(a, b, x)), 1e-9)


@given(st.floats(1e-15, 1 - 1e-15))
def test_norm_ppf_equals_scipy(probability: float) -> None:
    assert norm_ppf(probability) == pytest.approx(float(ndtri(probability)), rel=1e-12, abs=1e-15)


@given(st.integers(1, 300), st.floats(0, 1000), st.floats(0, 1000))
def test_chi2_sf_is_a_falling_probability(dof: int, x: float, y: float) -> None:
    low, high = sorted((x, y))
    assert 0.0 <= chi2_sf(high, dof) <= chi2_sf(low, dof) <= 1.0


@given(st.integers(0, 10_000), st.data())
def test_binom_cdf_is_a_rising_probability_with_binomial_symmetry(n: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(0, n))
    assert 0.0 <= binom_cdf(k - 1, n, 0.5) <= binom_cdf(k, n, 0.5) <= 1.0
    # Binomial(n, 1/2) is symmetric: P(X <= k) = P(X >= n - k) = 1 - P(X <= n - k - 1).
    # The continued fraction of the incomplete beta is good to about 1e-12 per side, not exactly.
    assert binom_cdf(k, n, 0.5) == pytest.approx(1 - binom_cdf(n - k - 1, n, 0.5), abs=1e-10)


def test_small_binomials_equal_exact_sums() -> None:
    """Against the definition, with exact integer arithmetic, not another library (also where
    SciPy answers NaN: no trials, or k outside 0..n)."""
    for n in range(0, 40):
        assert binom_cdf(-1, n, 0.5) == 0.0
        assert binom_cdf(n + 1, n, 0.5) == 1.0
        for k in range(0, n + 1):
            exact = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
            assert binom_cdf(k, n, 0.5) == pytest.approx(exact, rel=1e-12)


def test_even_dof_chi2_equals_its_closed_form() -> None:
    """For 2m degrees of freedom, P(X >= x) = e^(-x/2) * sum_{i<m} (x/2)^i / i!."""
    for m in range(1, 30):
        for x in (0.1, 1.0, 5.0, 20.0, 80.0):
            closed = math.exp(-x / 2) * sum((x / 2) ** i / math.factorial(i) for i in range(m))
            assert chi2_sf(x, 2 * m) == pytest.approx(closed, rel=1e-12)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: chi2_sf(1.0, 0), "dof must be positive"),
        (lambda: binom_cdf(1, -1, 0.5), "n >= 0"),
        (lambda: binom_cdf(1, 3, 1.5), "p in"),
        (lambda: norm_ppf(1.0), r"\(0, 1\)"),
    ],
)
def test_arguments_outside_the_domain_are_refused(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


def test_nan_statistic_gives_nan() -> None:
    assert math.isnan(chi2_sf(math.nan, 2))
