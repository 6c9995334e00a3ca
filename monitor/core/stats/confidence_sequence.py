"""Confidence sequences for bounded means, by betting: intervals valid at every sample size at once.

For observations X_i in a known range [lo, hi] with mean mu, the
evidence that mu > m is the *e-process* (a nonnegative supermartingale starting
at 1 when mu <= m)

    E_t(m) = sum_j w_j prod_{i<=t} exp(lambda_ij (X_i - m) - psi(u_j) ((X_i - mean_{i-1}) / c_i)^2),

with c_i = mean_{i-1} - lo, lambda_ij = u_j / c_i, psi(u) = -log(1 - u) - u and
mean_{i-1} the running mean of the earlier observations (shrunk towards the
middle of the range by one pseudo-observation, so it is predictable and strictly
inside the range). Each factor has conditional mean <= 1 by Fan's inequality
exp(u y - psi(u) y^2) <= 1 + u y for y >= -1 and 0 <= u < 1; this is the
empirical-Bernstein supermartingale of Howard, Ramdas, McAuliffe and Sekhon,
"Time-uniform, nonparametric, nonasymptotic confidence sequences" (Ann. Statist.
2021) and of the predictable plug-in construction in Waudby-Smith and Ramdas,
"Estimating means of bounded random variables by betting" (JRSS-B 2023), here
mixed over a fixed grid of bet fractions u_j (:class:`BetGrid`) instead of one
tuned bet. By Ville's inequality, P(E_t(m) >= 1/a for some t) <= a. The lower
end of the CS is the largest m that the upward e-process rejects at a = alpha/2;
the upper end mirrors it. The e-process depends on the data only through
running sums and is log-linear in m, so it is monotone in m (the CS is an
interval, found by a few Newton steps that never cross the exact bound), the
state is eight numbers per mean (:class:`MeanSums`), and two replicas' states
merge by adding them.

Why this construction: it adapts to the variance (most paired requests agree, so
a difference has far less variance than its range suggests), it bets big when
the evidence is big (a collapsed canary is caught in tens of events), it is
closed form (no grid over m, so a whole simulation of many streams is a few
cumulative sums, :func:`running_sums`), and everything stays additive.


Everything here is pure: numbers in, numbers out, numpy only, no I/O. The canary checks
built on it are in :mod:`monitor.core.stats.sequential`.
"""

from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple, Self

import msgspec
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Decision = Literal["go", "no_go", "undecided"]
Side = Literal["above", "below"]

PRIOR_WEIGHT = 1.0
"""Pseudo-observations at the middle of the range in the running mean used for centring."""

_NEWTON_STEPS = 40
BISECTION_STEPS = 40


def _psi(fraction: float) -> float:
    """The exponential-type cumulant bound -log(1 - u) - u of Fan's inequality."""
    return -math.log1p(-fraction) - fraction


class BetGrid(msgspec.Struct, frozen=True):
    """The mixture over bet fractions u in (0, 1) that every e-process here averages over.

    A small u is a cautious bet that pays off on small, persistent differences; a
    large u pays off quickly on large ones (a collapse). Spreading prior weight over
    a geometric grid costs about log(len) in evidence against the best single bet,
    and spares the user from choosing a bet size.

    >>> grid = BetGrid.geometric(smallest=0.1, largest=0.4, count=3)
    >>> [round(u, 2) for u in grid.fractions], grid.weights
    ([0.1, 0.2, 0.4], (0.3333333333333333, 0.3333333333333333, 0.3333333333333333))
    """

    fractions: tuple[float, ...]
    weights: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.fractions or len(self.fractions) != len(self.weights):
            raise ValueError("a bet grid needs as many weights as fractions, and at least one")
        if not all(0 < u < 1 for u in self.fractions):
            raise ValueError(f"bet fractions must lie in (0, 1), got {self.fractions}")
        if not all(w > 0 for w in self.weights) or not math.isclose(sum(self.weights), 1.0, rel_tol=1e-9):
            raise ValueError(f"bet weights must be positive and sum to 1, got {self.weights}")

    @classmethod
    def geometric(cls, smallest: float = 0.02, largest: float = 0.9, count: int = 8) -> BetGrid:
        """Return ``count`` fractions spaced geometrically from ``smallest`` to ``largest``, equally weighted."""
        if count < 1 or not 0 < smallest <= largest < 1:
            raise ValueError("need 0 < smallest <= largest < 1 and count >= 1")
        fractions = tuple(float(u) for u in np.geomspace(smallest, largest, count))
        return cls(fractions=fractions, weights=(1.0 / count,) * count)



DEFAULT_BETS = BetGrid.geometric(smallest=0.02, largest=0.9, count=8)
"""8 bet fractions from 0.02 to 0.9 (ratio 1.72 between neighbours), equally weighted.

A bet u pays off on a gap g beyond the null when g > u v / 2 (v: the per-request
variance), so the smallest bet still detects, eventually, a gap of a tenth of a
point beyond the margin in a paired class difference (v ~ 0.1); the largest is
right for a canary that answers one class almost always. In the detection
benchmark this grid decided a 5-point class shift about 4% sooner than 12 bets
from 0.01 and 5% later than 6 bets from 0.05 (which gives up on gaps under about
a quarter of a point), and was as fast on a collapse.
"""


class MeanSums(NamedTuple):
    """The sufficient state of the e-processes of one mean, as arrays of a common shape.

    ``n`` and ``total`` count and add the observations; the ``up_*`` sums drive the
    e-process for "mean above m" and the ``down_*`` sums the one for "mean below m":
    with c_i the bet scale of observation i (its predictable distance to the range
    end), ``*_signal`` adds +-X_i / c_i, ``*_scale`` adds 1 / c_i and ``*_var`` adds
    ((X_i - mean_{i-1}) / c_i)^2. All are sums, so two states merge by adding them.
    """

    n: FloatArray
    total: FloatArray
    up_signal: FloatArray
    up_scale: FloatArray
    up_var: FloatArray
    down_signal: FloatArray
    down_scale: FloatArray
    down_var: FloatArray

    @classmethod
    def zeros(cls, shape: tuple[int, ...] = ()) -> MeanSums:
        """Return the state before any observation."""
        return cls(*(np.zeros(shape) for _ in cls._fields))

    def plus(self, other: MeanSums) -> MeanSums:
        """Return the state of both streams together (element-wise sums)."""
        return MeanSums(*(np.add(mine, theirs) for mine, theirs in zip(self, other, strict=True)))

    def at(self, index: Any) -> MeanSums:
        """Return the state at ``index`` of every array (e.g. ``[..., t]`` for time t of a path)."""
        return MeanSums(*(np.asarray(part[index], dtype=np.float64) for part in self))



def _check_range(lo: float, hi: float) -> None:
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"need finite lo < hi, got lo={lo!r}, hi={hi!r}")


def check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")


def check_margin(margin: float, name: str = "margin") -> None:
    if not (math.isfinite(margin) and margin >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {margin!r}")


def _exclusive_cumsum(start: FloatArray, terms: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Running sums before and after each term along the last axis, starting from ``start``.

    Sums are accumulated left to right from ``start``, exactly as repeated scalar
    additions would be, so a batch gives bit-for-bit the numbers of one-by-one updates.
    """
    running = np.cumsum(np.concatenate([start[..., None], terms], axis=-1), axis=-1)
    return running[..., :-1], running[..., 1:]


def running_sums(values: npt.ArrayLike, lo: float, hi: float, start: MeanSums | None = None) -> MeanSums:
    """Return the state after each observation along the last axis of ``values``.

    ``values`` has shape ``batch + (T,)``: for example streams x time in a
    simulation, or classes x events for a class check. ``start`` (shape ``batch``)
    is the state before the first of them (zeros when omitted). Entry ``[..., t]``
    of the result is the state after observations ``0..t``.

    Raises:
        ValueError: when a value is not finite or lies outside [lo, hi].
    """
    _check_range(lo, hi)
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 0:
        raise ValueError("values need a time axis (the last one)")
    if not np.all(np.isfinite(x)) or np.any(x < lo) or np.any(x > hi):
        raise ValueError(f"values must be finite and within [{lo}, {hi}]")
    if start is None:
        start = MeanSums.zeros(x.shape[:-1])
    steps = np.ones_like(x)
    n_before, n_after = _exclusive_cumsum(start.n, steps)
    total_before, total_after = _exclusive_cumsum(start.total, x)
    mean_before = (PRIOR_WEIGHT * (lo + hi) / 2 + total_before) / (PRIOR_WEIGHT + n_before)
    up_inverse = 1.0 / (mean_before - lo)
    down_inverse = 1.0 / (hi - mean_before)
    deviation = x - mean_before
    squared = deviation * deviation
    return MeanSums(
        n=n_after,
        total=total_after,
        up_signal=_exclusive_cumsum(start.up_signal, x * up_inverse)[1],
        up_scale=_exclusive_cumsum(start.up_scale, up_inverse)[1],
        up_var=_exclusive_cumsum(start.up_var, squared * (up_inverse * up_inverse))[1],
        down_signal=_exclusive_cumsum(start.down_signal, -x * down_inverse)[1],
        down_scale=_exclusive_cumsum(start.down_scale, down_inverse)[1],
        down_var=_exclusive_cumsum(start.down_var, squared * (down_inverse * down_inverse))[1],
    )


def _drift_and_var(sums: MeanSums, null: npt.ArrayLike, side: Side) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per unit bet: the gain against ``null``, the variance penalty, and the gain's slope in the null."""
    m = np.asarray(null, dtype=np.float64)
    if side == "above":
        return sums.up_signal - m * sums.up_scale, sums.up_var, sums.up_scale
    return sums.down_signal + m * sums.down_scale, sums.down_var, sums.down_scale


def _exponents(sums: MeanSums, null: npt.ArrayLike, side: Side, bets: BetGrid) -> tuple[FloatArray, FloatArray]:
    """Log-capital of each bet (last axis) and the e-process's slope factor in the null value."""
    drift, var, scale = _drift_and_var(sums, null, side)
    fractions = np.asarray(bets.fractions)
    psis = np.asarray([_psi(u) for u in bets.fractions])
    exponents = np.log(np.asarray(bets.weights)) + fractions * drift[..., None] - psis * var[..., None]
    return exponents, np.broadcast_to(scale, drift.shape)


def _logsumexp(exponents: FloatArray) -> tuple[FloatArray, FloatArray]:
    """log(sum(exp(.))) over the last axis, and the softmax weights."""
    top = np.max(exponents, axis=-1, keepdims=True)
    shifted = np.exp(exponents - top)
    total = np.sum(shifted, axis=-1, keepdims=True)
    return (top + np.log(total))[..., 0], shifted / total


def log_e_value(sums: MeanSums, null: npt.ArrayLike, side: Side, bets: BetGrid = DEFAULT_BETS) -> FloatArray:
    """Return the log of the e-process against "mean <= null" (``side="above"``) or "mean >= null" ("below").

    Under its null the e-process is a nonnegative supermartingale starting at 1, so
    the chance it ever reaches 1/a is at most a (Ville's inequality); it is
    decreasing in ``null`` for "above" and increasing for "below". Broadcasts
    ``null`` against the sums' shape.

    This loop over the bets is the hot path of a simulation: one exp per bet.
    """
    drift, var, _ = _drift_and_var(sums, null, side)
    result: FloatArray = np.full(np.broadcast(drift, var).shape, -np.inf)
    for fraction, weight in zip(bets.fractions, bets.weights, strict=True):
        result = np.logaddexp(result, math.log(weight) + fraction * drift - _psi(fraction) * var)
    return result


def relative_e_value(sums: MeanSums, null: npt.ArrayLike, side: Side, bets: BetGrid, threshold: float) -> FloatArray:
    """The e-process against ``null`` divided by exp(threshold): the decision rule compares it with 1.

    Computed as a plain sum of exponentials (about twice as fast as ``log_e_value``
    in simulations of many streams). A term too large for a float already settles
    any comparison with 1, so exponents are capped instead of overflowing. Every
    decision here, one-by-one or batch, goes through this function, so both give
    the same answers.
    """
    drift, var, _ = _drift_and_var(sums, null, side)
    total: FloatArray = np.zeros(np.broadcast(drift, var).shape)
    for fraction, weight in zip(bets.fractions, bets.weights, strict=True):
        exponent = math.log(weight) - threshold + fraction * drift - _psi(fraction) * var
        total += np.exp(np.minimum(exponent, 600.0))
    return total


def _bound(sums: MeanSums, threshold: float, lo: float, hi: float, side: Side, bets: BetGrid) -> FloatArray:
    """The CS end on ``side`` ("above": lower end) at log-threshold ``threshold``.

    The log e-process is convex and monotone in the null value (a log-sum of
    exponentials of linear functions). Newton's method started at the range end
    where the null is rejected therefore moves towards the exact bound without ever
    crossing it: every iterate is itself a rejected null value, so the reported
    bound is exact up to the last step and never narrower than the true one.
    """
    start, direction = (lo, 1.0) if side == "above" else (hi, -1.0)
    point: FloatArray = np.full(sums.n.shape, start)
    for _ in range(_NEWTON_STEPS):
        exponents, scale = _exponents(sums, point, side, bets)
        log_e, weights = _logsumexp(exponents)
        excess = log_e - threshold
        slope = scale * np.sum(weights * np.asarray(bets.fractions), axis=-1)
        # Each value moves until it is within 1e-12 of the threshold, whatever the rest
        # of the array does, so a batch gives the same bounds as one-by-one reads.
        moving = (excess > 1e-12) & (slope > 0)
        if not np.any(moving):
            break
        step = np.divide(excess, slope, out=np.zeros_like(excess), where=moving)
        candidate = np.clip(point + direction * step, lo, hi)
        # Guard against rounding: keep a step only if its end is still rejected.
        candidate_log_e = log_e_value(sums, candidate, side, bets)
        point = np.where(moving & (candidate_log_e >= threshold), candidate, point)
    return point


def cs_bounds(
    sums: MeanSums, alpha: float, lo: float, hi: float, bets: BetGrid = DEFAULT_BETS
) -> tuple[FloatArray, FloatArray]:
    """Return the (lower, upper) ends of the (1 - alpha) confidence sequence, alpha/2 on each side.

    Works on any shape of state, e.g. a whole simulated path at once. Before any
    observation the interval is [lo, hi].
    """
    check_alpha(alpha)
    threshold = math.log(2.0 / alpha)
    return (
        _bound(sums, threshold, lo, hi, "above", bets),
        _bound(sums, threshold, lo, hi, "below", bets),
    )


def e_value_of(log_e: float) -> float:
    """exp(log_e), capped below the float maximum so it stays finite in JSON."""
    return math.exp(max(min(log_e, 700.0), -700.0))


def p_value_of(log_e: float, multiplicity: int = 1) -> float:
    """The always-valid p-value min(1, multiplicity / E) of an e-process."""
    # An e-value below 1 is no evidence at all (p = 1); exp(-log_e) would overflow for a very negative one.
    return min(1.0, multiplicity * math.exp(-min(max(log_e, 0.0), 700.0)))



class MeanState(msgspec.Struct):
    """Sums of one or more means over a shared range: the mutable core the checks are built on."""

    lo: float
    hi: float
    sums: MeanSums

    @classmethod
    def empty(cls, lo: float, hi: float, shape: tuple[int, ...] = ()) -> MeanState:
        """The state before any observation, of ``shape`` means."""
        _check_range(lo, hi)
        return cls(float(lo), float(hi), MeanSums.zeros(shape))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MeanState):
            return NotImplemented
        # numpy compares arrays element-wise; one answer for all the sums
        return (self.lo, self.hi) == (other.lo, other.hi) and all(
            np.array_equal(mine, theirs) for mine, theirs in zip(self.sums, other.sums, strict=True)
        )

    def update_many(self, values: npt.ArrayLike) -> None:
        x = np.asarray(values, dtype=np.float64)
        if x.size == 0:
            return
        x = x.reshape((*self.sums.n.shape, -1))
        self.sums = running_sums(x, self.lo, self.hi, start=self.sums).at((..., -1))

    def merge(self, other: MeanState) -> None:
        if (self.lo, self.hi) != (other.lo, other.hi) or self.sums.n.shape != other.sums.n.shape:
            raise ValueError("can only merge states over the same range and shape")
        self.sums = self.sums.plus(other.sums)

    def mean(self) -> FloatArray:
        middle = (self.lo + self.hi) / 2
        means: FloatArray = np.divide(
            self.sums.total, self.sums.n, out=np.full(self.sums.n.shape, middle), where=self.sums.n > 0
        )
        return means


class BoundedMeanCS(msgspec.Struct):
    """A time-uniform confidence sequence for the mean of independent values in a known [lo, hi].

    ``lower`` and ``upper`` hold at every sample size at once: with probability at
    least 1 - alpha the interval contains the mean after every update, however many
    there are. See the module docstring for the construction.

    >>> cs = BoundedMeanCS(lo=0.0, hi=1.0, alpha=0.05)
    >>> cs.update_many([1, 0, 0, 0] * 100).n
    400
    >>> cs.mean, round(cs.lower, 3), round(cs.upper, 3)
    (0.25, 0.18, 0.328)
    >>> cs.e_value_above(0.1) > 20  # strong evidence the mean exceeds 0.1
    True
    """

    lo: float = 0.0
    hi: float = 1.0
    alpha: float = 0.05
    bets: BetGrid = DEFAULT_BETS
    # the running sums; None only until __post_init__ starts them (msgspec runs it on decode too)
    _state: MeanState = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        check_alpha(self.alpha)
        _check_range(self.lo, self.hi)
        self.lo, self.hi, self.alpha = float(self.lo), float(self.hi), float(self.alpha)
        if self._state is None:
            self._state = MeanState.empty(self.lo, self.hi)

    @property
    def sums(self) -> MeanSums:
        """The state: eight sums (0-d arrays)."""
        return self._state.sums

    def update(self, value: float) -> Self:
        """Add one observation. Raises ValueError outside [lo, hi] or for NaN/inf; the state is then unchanged."""
        return self.update_many([value])

    def update_many(self, values: npt.ArrayLike) -> Self:
        """Add observations in order; the same result as calling :meth:`update` on each."""
        self._state.update_many(np.ravel(np.asarray(values, dtype=np.float64)))
        return self

    def merge(self, other: BoundedMeanCS) -> Self:
        """Add another replica's state (its own requests, disjoint from this one's).

        The merged e-process multiplies both replicas' factors, each of which has
        conditional mean <= 1 given everything seen before it on either replica, so
        it is again a test supermartingale and the merged CS keeps its guarantee.
        Counts and means merge exactly; the other sums differ from those of one
        stream fed both in order, since each replica centres and scales its bets
        on its own running mean.
        """
        if (self.alpha, self.bets) != (other.alpha, other.bets):
            raise ValueError("can only merge confidence sequences with the same alpha and bets")
        self._state.merge(other._state)
        return self

    @property
    def n(self) -> int:
        return int(self.sums.n)

    @property
    def mean(self) -> float:
        """The sample mean; the middle of [lo, hi] before any observation."""
        return float(self._state.mean())

    @property
    def lower(self) -> float:
        return float(cs_bounds(self.sums, self.alpha, self.lo, self.hi, self.bets)[0])

    @property
    def upper(self) -> float:
        return float(cs_bounds(self.sums, self.alpha, self.lo, self.hi, self.bets)[1])

    def e_value_above(self, null: float) -> float:
        """Return the e-process value against "mean <= null": large means evidence the mean is above it."""
        return e_value_of(float(log_e_value(self.sums, null, "above", self.bets)))

    def e_value_below(self, null: float) -> float:
        """Return the e-process value against "mean >= null": large means evidence the mean is below it."""
        return e_value_of(float(log_e_value(self.sums, null, "below", self.bets)))
