"""How far apart two class distributions are, and whether the gap is beyond chance.

Every function takes class *count* vectors aligned on the same classes: sequences
or 1-D numpy arrays of non-negative, finite numbers (integer counts, or floats such
as scaled reference shares). Counts are normalised here, so only proportions
matter: multiplying a vector by a positive constant changes no divergence.

An all-zero vector (no observations yet) is allowed everywhere and gives a defined
answer, never an error or a NaN; each function says which. The rule throughout is
that *no data is no evidence of a difference*: divergences are 0.0 and tests give
p = 1.0 when either side is empty.

Malformed input (different lengths, not 1-D, negative, NaN or infinite entries)
raises :class:`ValueError`; that is a caller's bug, not a property of the traffic.

These functions run a few times a second per deployment, not per event: they are
written for clarity, vectorised with numpy, and return plain Python numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.core.stats.distributions import chi2_sf

CountVector = Sequence[float] | npt.NDArray[Any]
"""Counts per class: a sequence or 1-D array of non-negative finite numbers."""

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Chi2Result:
    """A chi-square test's statistic, degrees of freedom and p-value.

    >>> Chi2Result(statistic=0.0, dof=0, p_value=1.0)
    Chi2Result(statistic=0.0, dof=0, p_value=1.0)
    """

    statistic: float
    dof: int
    p_value: float


_NO_EVIDENCE = Chi2Result(statistic=0.0, dof=0, p_value=1.0)


def _as_counts(values: CountVector, name: str) -> FloatArray:
    """The values as a float64 vector, after checking they are usable counts."""
    counts = np.asarray(values, dtype=np.float64)
    if counts.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {counts.shape}")
    if not np.all(np.isfinite(counts)):
        raise ValueError(f"{name} must be finite, got {counts.tolist()}")
    if np.any(counts < 0):
        raise ValueError(f"{name} must be non-negative, got {counts.tolist()}")
    return counts


def _as_count_pair(
    first: CountVector, second: CountVector, names: tuple[str, str]
) -> tuple[FloatArray, FloatArray]:
    """Both vectors as checked float64 vectors of the same length."""
    first_counts = _as_counts(first, names[0])
    second_counts = _as_counts(second, names[1])
    if first_counts.shape != second_counts.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must cover the same classes, "
            f"got lengths {first_counts.size} and {second_counts.size}"
        )
    return first_counts, second_counts


def _shares_of(counts: FloatArray) -> FloatArray:
    """Shares of an already checked vector; zeros when it is empty."""
    total = counts.sum()
    if total == 0:
        return np.zeros_like(counts)
    if not np.isfinite(total):
        # Entries near the float maximum overflow the sum: scale them down first.
        counts = counts / counts.max()
        total = counts.sum()
    shares_: FloatArray = counts / total
    return shares_


def shares(counts: CountVector) -> FloatArray:
    """Return the counts normalised to sum to 1, or all zeros for an empty vector.

    >>> shares([1, 3]).tolist()
    [0.25, 0.75]
    >>> shares([0, 0]).tolist()
    [0.0, 0.0]
    """
    return _shares_of(_as_counts(counts, "counts"))


def js_distance(p_counts: CountVector, q_counts: CountVector) -> float:
    """Return the Jensen-Shannon distance (base-2 logs, in [0, 1]) between two count vectors.

    This is the square root of the Jensen-Shannon divergence of the normalised
    counts, the value ``scipy.spatial.distance.jensenshannon(p, q, base=2)`` gives:
    0 for proportional vectors, 1 for vectors with no class in common.

    When either vector is empty (all zeros) the distance is 0.0: there is nothing
    to compare, hence no evidence of a difference. Callers that must tell "same"
    from "no data" check the totals first.

    >>> js_distance([10, 0], [0, 10])
    1.0
    >>> js_distance([1, 2, 3], [2, 4, 6])
    0.0
    >>> js_distance([0, 0], [5, 1])
    0.0
    """
    p, q = _as_count_pair(p_counts, q_counts, ("p_counts", "q_counts"))
    if p.sum() == 0 or q.sum() == 0:
        return 0.0
    p, q = _shares_of(p), _shares_of(q)
    pair_total = p + q
    # With m = (p + q) / 2, p / m = 1 + r and q / m = 1 - r where r = (p - q) / (p + q).
    # Pairing the two terms of a class through log1p keeps the result accurate (and
    # non-negative) when p and q are nearly equal, instead of cancelling two logs.
    ratio = np.divide(p - q, pair_total, out=np.zeros_like(pair_total), where=pair_total > 0)
    divergence_nats = 0.5 * float(np.sum(_x_log1p(p, ratio) + _x_log1p(q, -ratio)))
    divergence_bits = divergence_nats / math.log(2)
    return math.sqrt(min(max(divergence_bits, 0.0), 1.0))


def _x_log1p(x: FloatArray, y: FloatArray) -> FloatArray:
    """x * log1p(y) elementwise, 0 where x is 0 (whatever y): a class with no share adds nothing."""
    out = np.zeros_like(x)
    np.multiply(x, np.log1p(y, out=np.zeros_like(y), where=x != 0), out=out, where=x != 0)
    return out


def psi(expected_counts: CountVector, actual_counts: CountVector, floor: float = 1e-4) -> float:
    """Return the Population Stability Index between expected and actual count vectors.

    PSI = sum over classes of (a - e) * ln(a / e), where e and a are the expected and
    actual shares. Each share is first raised to at least ``floor`` (in both the
    difference and the log), so a class empty on one side adds a large but finite
    amount instead of infinity, and classes under ``floor`` on both sides add
    nothing. Every term is >= 0, and the index is symmetric in its two arguments.

    Evidently's PSI replaces only shares that are exactly zero, by 1e-4 (or by a
    millionth of the smallest non-zero share when that is 1e-4 or less); the two
    agree when every non-zero share on both sides exceeds 1e-4.

    When either vector is empty (all zeros) the index is 0.0: no evidence of a shift.

    >>> psi([50, 50], [50, 50])
    0.0
    >>> round(psi([60, 40], [40, 60]), 4)  # 0.4 * ln(1.5)
    0.1622
    >>> psi([0, 0], [3, 7])
    0.0

    Raises:
        ValueError: when ``floor`` is not a positive finite number.
    """
    if not (math.isfinite(floor) and floor > 0):
        raise ValueError(f"floor must be a positive finite number, got {floor!r}")
    expected, actual = _as_count_pair(
        expected_counts, actual_counts, ("expected_counts", "actual_counts")
    )
    if expected.sum() == 0 or actual.sum() == 0:
        return 0.0
    expected_shares = np.maximum(_shares_of(expected), floor)
    actual_shares = np.maximum(_shares_of(actual), floor)
    terms = (actual_shares - expected_shares) * np.log(actual_shares / expected_shares)
    return float(np.sum(terms))


def _chi2_p_value(statistic: float, dof: int) -> float:
    """Upper-tail probability of a chi-square variable with ``dof`` degrees of freedom."""
    return chi2_sf(statistic, dof)


def chi2_homogeneity(a_counts: CountVector, b_counts: CountVector) -> Chi2Result:
    """Return the chi-square test of homogeneity of two count vectors (2 x k table).

    Tests whether both samples come from the same class distribution, as
    ``scipy.stats.chi2_contingency(table, correction=False)`` does: classes empty on
    both sides are dropped first, and no continuity correction is applied, so
    ``dof`` is the number of remaining classes minus 1.

    With an empty side, or fewer than 2 classes left, there is nothing to test:
    the result is statistic 0.0, dof 0, p_value 1.0.

    >>> result = chi2_homogeneity([30, 10, 0], [10, 30, 0])
    >>> result.statistic, result.dof, result.p_value < 1e-4
    (20.0, 1, True)
    >>> chi2_homogeneity([10, 20], [20, 40])
    Chi2Result(statistic=0.0, dof=1, p_value=1.0)
    >>> chi2_homogeneity([0, 0], [4, 1])
    Chi2Result(statistic=0.0, dof=0, p_value=1.0)
    """
    a, b = _as_count_pair(a_counts, b_counts, ("a_counts", "b_counts"))
    seen = (a + b) > 0
    table = np.vstack([a[seen], b[seen]])
    if table.shape[1] < 2 or a.sum() == 0 or b.sum() == 0:
        return _NO_EVIDENCE
    row_totals = table.sum(axis=1, keepdims=True)
    column_totals = table.sum(axis=0, keepdims=True)
    expected = row_totals * column_totals / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    dof = table.shape[1] - 1
    return Chi2Result(statistic=statistic, dof=dof, p_value=_chi2_p_value(statistic, dof))


def chi2_goodness_of_fit(counts: CountVector, expected_shares: CountVector) -> Chi2Result:
    """Return Pearson's chi-square test of observed counts against expected class shares.

    ``expected_shares`` need not sum to 1: they are normalised, then scaled to the
    observed total. When every expected share is positive this is exactly
    ``scipy.stats.chisquare(counts, f_exp)``, with ``dof`` = classes - 1.

    Classes with expected share 0 are left out of the statistic and of ``dof``
    (= classes with a positive expected share, minus 1). If any of them was
    observed, the observation is impossible under the expected distribution: the
    result is statistic ``inf`` and p_value 0.0. This includes an all-zero
    ``expected_shares`` against any observation.

    With no observations, or a single possible class, there is nothing to test:
    statistic 0.0, dof 0, p_value 1.0.

    >>> result = chi2_goodness_of_fit([30, 10], [0.5, 0.5])  # 20 expected in each class
    >>> result.statistic, result.dof, round(result.p_value, 4)
    (10.0, 1, 0.0016)
    >>> chi2_goodness_of_fit([5, 1], [1.0, 0.0])
    Chi2Result(statistic=inf, dof=0, p_value=0.0)
    >>> chi2_goodness_of_fit([0, 0], [0.5, 0.5])
    Chi2Result(statistic=0.0, dof=0, p_value=1.0)
    """
    observed, expected_weights = _as_count_pair(
        counts, expected_shares, ("counts", "expected_shares")
    )
    total = observed.sum()
    possible = expected_weights > 0
    dof = max(int(possible.sum()) - 1, 0)
    if total == 0:
        return _NO_EVIDENCE
    if np.any(observed[~possible] > 0):
        return Chi2Result(statistic=math.inf, dof=dof, p_value=0.0)
    if dof == 0:
        return _NO_EVIDENCE
    expected = total * _shares_of(expected_weights[possible])
    statistic = float(np.sum((observed[possible] - expected) ** 2 / expected))
    return Chi2Result(statistic=statistic, dof=dof, p_value=_chi2_p_value(statistic, dof))


def entropy_bits(counts: CountVector) -> float:
    """Return the Shannon entropy in bits of the normalised counts; 0.0 for an empty vector.

    Ranges from 0 (every observation in one class) to log2(k) (uniform over k classes).

    >>> entropy_bits([5, 5, 5, 5])
    2.0
    >>> entropy_bits([7, 0, 0])
    0.0
    >>> entropy_bits([0, 0])
    0.0
    """
    class_shares = shares(counts)
    logs = np.log(class_shares, out=np.zeros_like(class_shares), where=class_shares > 0)
    return float(np.sum(class_shares * -logs) / math.log(2))


def largest_share(counts: CountVector) -> tuple[int, float]:
    """Return the index and share of the largest class; (-1, 0.0) for an empty vector.

    On a tie the lowest index wins.

    >>> largest_share([1, 6, 3])
    (1, 0.6)
    >>> largest_share([2, 2])
    (0, 0.5)
    >>> largest_share([0, 0, 0])
    (-1, 0.0)
    """
    checked = _as_counts(counts, "counts")
    if checked.sum() == 0:
        return -1, 0.0
    top = int(np.argmax(checked))
    return top, float(_shares_of(checked)[top])
