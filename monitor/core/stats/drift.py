"""Feature drift from binned state: PSI, Jensen-Shannon, KS and normed Wasserstein, with error bounds.

Streaming state cannot keep raw values, so numeric features are kept as counts over
fixed bin edges (taken from reference quantiles) plus exact summary statistics, and
categorical features as counts per category. Everything here is a pure function of
those counts.

Bins. For sorted edges ``e_0 < ... < e_K`` a value ``x`` falls in bin
``searchsorted(edges, x, side="left")``: bin 0 is ``(-inf, e_0]``, bin ``j`` is
``(e_{j-1}, e_j]`` and bin ``K+1`` is ``(e_K, inf)``. Bins are closed on the right,
so the counts up to bin ``j`` are exactly the empirical CDF ``F(e_j) = P(X <= e_j)``.

Exact and approximate. PSI and Jensen-Shannon are defined on the bins (categories),
so they are exact functions of the counts; given the same bins they equal
Evidently 0.7's values (its zero-share rule for PSI is kept: an empty bin gets a
share of 0.0001, or a millionth of the smallest non-empty share when that is at
most 0.0001). The KS statistic and the Wasserstein distance are statistics of the raw
values; from bins they are approximations with these bounds (``p_j``, ``q_j`` the
reference and current shares of bin ``j``, ``d_j = F(left_j) - G(left_j)`` the CDF
gap at its left edge, ``w_j`` its width):

* KS. Within bin ``j``, ``F(x) - G(x) <= F(right_j) - G(left_j) = d_j + p_j`` and
  ``G(x) - F(x) <= q_j - d_j``. The binned statistic ``D_b = max_j |d_j|`` (the gap
  at the edges) is a lower bound, and the true statistic ``D`` satisfies
  ``D_b <= D <= max(D_b, max_j max(d_j + p_j, q_j - d_j)) <= D_b + max_j min(p_j, q_j)``.
  With ``B`` reference-quantile bins and no drift, ``min(p_j, q_j)`` is about ``1/B``.
* Wasserstein. ``W = integral |F - G| dx``. Within bin ``j`` both ``F - G`` and its
  linear interpolation lie in ``[d_j - q_j, d_j + p_j]``, so with ``L_j`` the smallest
  and ``U_j`` the largest ``|.|`` on that interval,
  ``sum_j w_j L_j <= W <= sum_j w_j U_j``, and the estimate (CDFs linear within a
  bin) lies in the same interval: ``|W - W_est| <= sum_j w_j (p_j + q_j)``, the
  computed interval being tighter. The outer bins are bounded by the smallest and
  largest values seen (kept exactly in the summaries). Evidently norms ``W`` by
  ``max(std(reference), 0.001)`` (population standard deviation), which the
  reference summary holds exactly; the bound is normed alike.

These run a few times a second per feature, not per event.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import msgspec
import numpy as np
import numpy.typing as npt

from monitor.core.stats import divergence

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Evidently's floor for the norm of the Wasserstein distance (a constant reference).
WASSERSTEIN_MIN_NORM = 0.001


@dataclass(frozen=True, slots=True)
class Estimate:
    """A statistic computed from bins, with the interval the exact (raw-data) value lies in.

    >>> Estimate(0.1, 0.08, 0.12).error_bound
    0.02
    """

    value: float
    lower: float
    upper: float

    @property
    def error_bound(self) -> float:
        """The largest distance from the value to the exact statistic."""
        return round(max(self.value - self.lower, self.upper - self.value), 15)


def quantile_edges(values: npt.ArrayLike, bins: int) -> FloatArray:
    """Sorted unique bin edges at the reference's quantiles 0, 1/bins, ..., 1 (finite values only).

    >>> quantile_edges([1.0, 2.0, 3.0, 4.0, 5.0], 4).tolist()
    [1.0, 2.0, 3.0, 4.0, 5.0]
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    data = np.asarray(values, dtype=np.float64)
    data = data[np.isfinite(data)]
    if data.size == 0:
        raise ValueError("no finite values to take bin edges from")
    return np.unique(np.quantile(data, np.linspace(0.0, 1.0, bins + 1)))


def bin_counts(edges: FloatArray, values: npt.ArrayLike) -> IntArray:
    """Counts of ``values`` in the ``len(edges) + 1`` right-closed bins of ``edges``."""
    index = np.searchsorted(edges, np.asarray(values, dtype=np.float64), side="left")
    return np.bincount(index, minlength=edges.size + 1).astype(np.int64)


def _shares(counts: npt.ArrayLike, name: str) -> FloatArray:
    array = np.asarray(counts, dtype=np.float64)
    if array.ndim != 1 or not np.all(np.isfinite(array)) or np.any(array < 0):
        raise ValueError(f"{name} must be a 1-D vector of non-negative finite counts")
    total = array.sum()
    return array / total if total > 0 else array


def _pair(reference: npt.ArrayLike, current: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    p, q = _shares(reference, "reference"), _shares(current, "current")
    if p.shape != q.shape:
        raise ValueError(f"reference and current must have the same bins, got {p.size} and {q.size}")
    return p, q


def _fill_zeroes(shares: FloatArray) -> FloatArray:
    """Evidently's rule: empty bins get 0.0001, or a millionth of the smallest share when that is <= 0.0001."""
    nonzero = shares[shares > 0]
    filled = shares.copy()
    smallest = float(nonzero.min())
    filled[filled == 0] = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return filled


def psi(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """Population stability index of current against reference counts over the same bins (0 if either is empty).

    >>> psi([10, 20, 30], [10, 20, 30])
    0.0
    """
    p, q = _pair(reference, current)
    if p.sum() == 0 or q.sum() == 0:
        return 0.0
    p, q = _fill_zeroes(p), _fill_zeroes(q)
    return float(np.sum((p - q) * np.log(p / q)))


def js_distance(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """Jensen-Shannon distance (natural log, as Evidently) of two count vectors (0 if either is empty).

    >>> js_distance([5, 5], [5, 5])
    0.0
    """
    p, q = _pair(reference, current)
    if p.sum() == 0 or q.sum() == 0:
        return 0.0
    # The base-2 distance scaled to natural logs: sqrt(D ln 2) for a divergence D in bits.
    return divergence.js_distance(p, q) * math.sqrt(math.log(2))


def _cdf_gaps(p: FloatArray, q: FloatArray) -> FloatArray:
    """F - G at the left edge of each bin (0 at the first)."""
    gaps = np.empty_like(p)
    gaps[0] = 0.0
    np.cumsum(p[:-1] - q[:-1], out=gaps[1:])
    return gaps


def ks_statistic(reference: npt.ArrayLike, current: npt.ArrayLike) -> Estimate:
    """Two-sample KS statistic from counts over the same right-closed bins, with its exact interval.

    The value is the gap at the bin edges, the lower end of the interval (see the module docstring).

    >>> ks_statistic([1, 1, 0], [0, 1, 1])
    Estimate(value=0.5, lower=0.5, upper=1.0)
    """
    p, q = _pair(reference, current)
    if p.sum() == 0 or q.sum() == 0:
        return Estimate(0.0, 0.0, 0.0)
    gaps = _cdf_gaps(p, q)
    at_edges = float(np.max(np.abs(np.append(gaps[1:], gaps[-1] + p[-1] - q[-1]))))
    within = float(np.max(np.maximum(gaps + p, q - gaps)))
    return Estimate(at_edges, at_edges, min(1.0, max(at_edges, within)))


def bin_widths(edges: FloatArray, low: float, high: float) -> FloatArray:
    """Widths of the ``len(edges) + 1`` bins, the outer two bounded by the smallest and largest values seen."""
    bounds = np.concatenate(([min(low, edges[0])], edges, [max(high, edges[-1])]))
    return np.diff(bounds)


def wasserstein_norm(reference_std: float) -> float:
    """Evidently's norm of the Wasserstein distance: the reference's standard deviation, at least 0.001."""
    return max(reference_std, WASSERSTEIN_MIN_NORM)


def wasserstein_distance(
    reference: npt.ArrayLike, current: npt.ArrayLike, widths: npt.ArrayLike, norm: float = 1.0,
    tails: tuple[float | None, float | None] = (None, None),
) -> Estimate:
    """First Wasserstein distance from counts over bins of the given widths, divided by ``norm``.

    The value takes each CDF as linear within a bin; the interval holds the exact distance.
    ``tails`` are the exact contributions of the first and last bin when known (see
    :func:`tail_contribution`): they replace that bin's estimate and bounds.

    >>> wasserstein_distance([1, 0], [0, 1], [1.0, 1.0])
    Estimate(value=1.0, lower=0.0, upper=2.0)
    """
    p, q = _pair(reference, current)
    width = np.asarray(widths, dtype=np.float64)
    if width.shape != p.shape or np.any(width < 0) or not np.all(np.isfinite(width)):
        raise ValueError("widths must be one non-negative finite width per bin")
    if norm <= 0:
        raise ValueError(f"norm must be positive, got {norm}")
    if p.sum() == 0 or q.sum() == 0:
        return Estimate(0.0, 0.0, 0.0)
    left = _cdf_gaps(p, q)
    right = left + p - q
    low_end, high_end = left - q, left + p
    straddles = (low_end <= 0) & (high_end >= 0)
    smallest = np.where(straddles, 0.0, np.minimum(np.abs(low_end), np.abs(high_end)))
    largest = np.maximum(np.abs(low_end), np.abs(high_end))
    parts = width * _mean_abs_of_line(left, right)
    low_parts, high_parts = width * smallest, width * largest
    for index, exact in ((0, tails[0]), (-1, tails[1])):
        if exact is not None:
            parts[index] = low_parts[index] = high_parts[index] = exact
    value = float(np.sum(parts))
    lower, upper = float(np.sum(low_parts)), float(np.sum(high_parts))
    # Rounding may put the value a hair outside its interval; the interval is what is proven.
    value = min(max(value, lower), upper)
    return Estimate(value / norm, lower / norm, upper / norm)


def tail_contribution(edge: float, count: int, exact_total: int, rows: int, below: bool) -> float:
    """The exact integral of |F - G| over an outer bin in which the other side has no value off the edge.

    Below the first edge (the other side's values there all equal it) F is 0 and the integral is
    the sum of (edge - x) over this side's ``count`` values in the bin, over its ``rows``; above the
    last edge F is 1 and it is the sum of (x - edge). ``exact_total`` is the bin's exact sum
    (:func:`exact_sum` units).
    """
    if rows == 0:
        return 0.0
    values = Fraction(exact_total, 1 << SUM_SCALE)
    inside = count * Fraction(edge) - values if below else values - count * Fraction(edge)
    return max(float(inside / rows), 0.0)


def _mean_abs_of_line(start: FloatArray, end: FloatArray) -> FloatArray:
    """Mean of |start + (end - start) t| over t in [0, 1], elementwise."""
    same_sign = start * end >= 0
    total = np.abs(start) + np.abs(end)
    safe_total = np.where(total > 0, total, 1.0)
    crossing = (start**2 + end**2) / (2 * safe_total)
    return np.where(same_sign, total / 2, crossing)


# Sums are kept exactly, as integers in units of 2**-SUM_SCALE (every float64 is a whole number of
# them), so a summary does not depend on how its stream was cut into batches or merged.
SUM_SCALE = 1126
_MANTISSA_BITS = 53
_HALF = 26


def exact_sum(values: FloatArray) -> int:
    """The exact sum of finite float64 values, in units of 2**-SUM_SCALE (vectorised; no rounding).

    >>> exact_sum(np.array([0.1, 0.2, -0.3])) == exact_sum(np.array([-0.3, 0.2, 0.1]))
    True
    """
    if values.size == 0:
        return 0
    mantissa, exponent = np.frexp(values)
    whole = (mantissa * 2.0**_MANTISSA_BITS).astype(np.int64)
    shift = exponent.astype(np.int64) + (SUM_SCALE - _MANTISSA_BITS)
    # Split each 53-bit mantissa in two halves whose sums per shift stay exact in float64 weights.
    high, low = whole >> _HALF, whole & ((1 << _HALF) - 1)
    base = int(shift.min())
    shift -= base
    high_sums = np.bincount(shift, weights=high)
    low_sums = np.bincount(shift, weights=low)
    total = 0
    for position in np.flatnonzero(high_sums.astype(bool) | low_sums.astype(bool)).tolist():
        total += ((int(high_sums[position]) << _HALF) + int(low_sums[position])) << position
    return total << base


class Summary(msgspec.Struct):
    """Count, missing, min, max and exact sums of a numeric stream, for its mean and M2; merges exactly.

    >>> s = Summary().update_many(np.array([1.0, 2.0, 3.0]))
    >>> (s.count, s.mean, s.m2, s.std)
    (3, 2.0, 2.0, 0.816496580927726)
    """

    count: int = 0
    missing: int = 0
    # the smallest and largest value (None before the first: state holds no infinity, JSON has none)
    low: float | None = None
    high: float | None = None
    # exact sums of the values and of their (float64) squares, in units of 2**-SUM_SCALE
    total: int = 0
    total_squares: int = 0
    # values whose square overflows float64 (|x| > 1e154): M2 is then infinite
    overflowed: int = 0

    def update_many(self, values: FloatArray) -> Summary:
        """Fold finite values in (the caller counts missing ones)."""
        if values.size == 0:
            return self
        squares = values * values
        finite = np.isfinite(squares)
        if not finite.all():
            self.overflowed += int(values.size - np.count_nonzero(finite))
            squares = squares[finite]
        self.count += int(values.size)
        self.total += exact_sum(values)
        self.total_squares += exact_sum(squares)
        self.low, self.high = min(self.min, float(values.min())), max(self.max, float(values.max()))
        return self

    def merge(self, other: Summary) -> Summary:
        self.count += other.count
        self.missing += other.missing
        if other.count:
            self.low, self.high = min(self.min, other.min), max(self.max, other.max)
        self.total += other.total
        self.total_squares += other.total_squares
        self.overflowed += other.overflowed
        return self

    @property
    def min(self) -> float:
        """The smallest value; inf before the first."""
        return math.inf if self.low is None else self.low

    @property
    def max(self) -> float:
        """The largest value; -inf before the first."""
        return -math.inf if self.high is None else self.high

    @property
    def mean(self) -> float:
        return float(Fraction(self.total, 1 << SUM_SCALE) / self.count) if self.count else 0.0

    @property
    def m2(self) -> float:
        """Sum of squared deviations from the mean (from the exact sums: no cancellation)."""
        if not self.count:
            return 0.0
        if self.overflowed:
            return math.inf
        scale = 1 << SUM_SCALE
        exact = Fraction(self.total_squares, scale) - Fraction(self.total, scale) ** 2 / self.count
        return max(float(exact), 0.0)

    @property
    def std(self) -> float:
        """Population standard deviation (ddof 0, as numpy's default and Evidently's norm)."""
        return math.sqrt(self.m2 / self.count) if self.count else 0.0
