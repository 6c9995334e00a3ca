"""Tail probabilities and quantiles of the chi-square, binomial and normal distributions.

The verdicts need three numbers from distributions: a chi-square upper tail (the
p-value of the class-distribution test), a binomial lower tail (McNemar's exact test)
and a normal quantile (Wilson intervals). Computing them here with the standard
library keeps SciPy out of the sidecar, whose import cost it about 30 MB of resident
memory (``rss_at_start_mb`` of benchmarks/throughput.py: 108 MB with it, 79 MB without).
The tests check every function against SciPy, to between 1e-8 and 1e-11 relative.

The incomplete gamma and beta functions are evaluated the textbook way: a power
series or a continued fraction (modified Lentz), whichever converges fast at the
point asked, with the prefactor taken in logs so that large arguments neither
overflow nor underflow before the product does.
"""

from __future__ import annotations

import math
from statistics import NormalDist

_EPSILON = 1e-15  # relative change at which a series or continued fraction has converged
_TINY = 1e-300  # stands in for zero in Lentz's method, where a zero would divide
_MAX_TERMS = 100_000
_STANDARD_NORMAL = NormalDist()


def chi2_sf(statistic: float, dof: float) -> float:
    """P(X >= statistic) for X chi-square with ``dof`` degrees of freedom (scipy's ``chdtrc``).

    >>> round(chi2_sf(3.841458820694124, 1), 6)
    0.05
    >>> chi2_sf(0.0, 3)
    1.0
    """
    if not dof > 0:
        raise ValueError(f"dof must be positive, got {dof!r}")
    if math.isnan(statistic):
        return math.nan
    if statistic <= 0:
        return 1.0
    return gamma_q(dof / 2, statistic / 2)


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X binomial with ``n`` trials of success probability ``p`` (scipy's ``bdtr``).

    >>> round(binom_cdf(0, 3, 0.5), 12)  # exactly 1/8; the incomplete beta gives 0.1250000000000001
    0.125
    >>> binom_cdf(3, 3, 0.5)
    1.0
    """
    if n < 0 or not 0 <= p <= 1:
        raise ValueError(f"need n >= 0 and p in [0, 1], got n={n!r}, p={p!r}")
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    # P(X <= k) = I_{1-p}(n - k, k + 1), the regularized incomplete beta function.
    return beta_i(1.0 - p, n - k, k + 1)


def norm_ppf(probability: float) -> float:
    """The standard normal quantile (scipy's ``ndtri``).

    >>> round(norm_ppf(0.975), 6)
    1.959964
    """
    if not 0 < probability < 1:
        raise ValueError(f"probability must be in (0, 1), got {probability!r}")
    return _STANDARD_NORMAL.inv_cdf(probability)


def gamma_q(a: float, x: float) -> float:
    """The regularized upper incomplete gamma function Q(a, x) = Gamma(a, x) / Gamma(a)."""
    if x <= 0:
        return 1.0
    if x < a + 1:
        # The series for P converges fast here, and Q = 1 - P is not small, so nothing cancels.
        return max(0.0, 1.0 - _gamma_p_series(a, x))
    return _gamma_q_fraction(a, x)


def _nonzero(value: float) -> float:
    """Lentz's guard: a term that is (nearly) zero stands in as _TINY, so nothing divides by zero."""
    return _TINY if abs(value) < _TINY else value


def _gamma_prefactor(a: float, x: float) -> float:
    """x^a e^-x / Gamma(a), in logs so that large a and x stay finite until the end."""
    return math.exp(a * math.log(x) - x - math.lgamma(a))


def _gamma_p_series(a: float, x: float) -> float:
    """P(a, x) by its power series: x^a e^-x / Gamma(a + 1) * sum of x^n / ((a+1)...(a+n))."""
    term = total = 1.0 / a
    denominator = a
    for _ in range(_MAX_TERMS):
        denominator += 1
        term *= x / denominator
        total += term
        if abs(term) < abs(total) * _EPSILON:
            return total * _gamma_prefactor(a, x)
    raise ArithmeticError(f"the incomplete gamma series did not converge at a={a!r}, x={x!r}")


def _gamma_q_fraction(a: float, x: float) -> float:
    """Q(a, x) by its continued fraction, evaluated with Lentz's method."""
    b = x + 1 - a
    c = 1 / _TINY
    d = 1 / b
    fraction = d
    for i in range(1, _MAX_TERMS):
        an = -i * (i - a)
        b += 2
        d = 1 / _nonzero(an * d + b)
        c = _nonzero(b + an / c)
        step = d * c
        fraction *= step
        if abs(step - 1) < _EPSILON:
            return _gamma_prefactor(a, x) * fraction
    raise ArithmeticError(f"the incomplete gamma fraction did not converge at a={a!r}, x={x!r}")


def beta_i(x: float, a: float, b: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(log_front)
    # The fraction converges fast below the distribution's mean; above it, by symmetry.
    if x < (a + 1) / (a + b + 2):
        return front * _beta_fraction(x, a, b) / a
    return max(0.0, 1.0 - front * _beta_fraction(1.0 - x, b, a) / b)


def _beta_fraction(x: float, a: float, b: float) -> float:
    """The continued fraction of I_x(a, b), evaluated with Lentz's method."""
    c = 1.0
    d = 1 / _nonzero(1.0 - (a + b) * x / (a + 1))
    fraction = d
    for m in range(1, _MAX_TERMS):
        # Each step has an even and an odd term.
        even = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        d = 1 / _nonzero(1 + even * d)
        c = _nonzero(1 + even / c)
        fraction *= d * c
        odd = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        d = 1 / _nonzero(1 + odd * d)
        c = _nonzero(1 + odd / c)
        step = d * c
        fraction *= step
        if abs(step - 1) < _EPSILON:
            return fraction
    raise ArithmeticError(f"the incomplete beta fraction did not converge at x={x!r}, a={a!r}, b={b!r}")
