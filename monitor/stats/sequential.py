"""Anytime-valid comparisons of a canary with the live model: confidence sequences and go / no-go.

A gate that re-reads a fixed-sample test after every event and stops at the first
"significant" result raises false alarms far above its nominal rate. The checks
here stay valid however often they are read: each keeps a *confidence sequence*
(CS), an interval for the quantity of interest that holds at every sample size
at once, and decides by comparing it with a practical margin:

- ``no_go`` when the CS lies entirely on the wrong side of the margin;
- ``go`` when it lies entirely on the right side;
- ``undecided`` otherwise (the caller turns a maximum sample size or duration
  into ``inconclusive``).

**Guarantee.** With error rate ``alpha`` (default 0.05): if the requests are
independent draws from a fixed traffic mix, the probability that a check *ever*
says ``no_go`` while the canary is in fact within the margin is at most
``alpha``, whether the verdict is read after every event, every second, or at
times chosen by looking at the data. The same bound holds for ``go`` said of a
canary that is in fact outside the margin. The margin is what keeps huge traffic
from failing a canary on a trivial difference: a check never says ``no_go`` for a
difference inside it (except with probability ``alpha``), however many requests
it sees. Per check (each bound holds over the whole comparison):

=====================  =====================  =================  ==================
check                  wrong ``no_go`` <=      wrong ``go`` <=     default boundary
=====================  =====================  =================  ==================
PairedDifference       alpha                  alpha              margin 0.01
UnpairedDifference     alpha                  alpha              margin 0.01
RateBelow              alpha / 2              alpha / 2          max_rate 0.2
PairedAccuracy         alpha / 2              alpha / 2          margin 0.02
=====================  =====================  =================  ==================

(The single-mean checks read their decision off a two-sided 1 - alpha interval,
as non-inferiority tests conventionally do, so each decision errs at most alpha / 2.)

**Assumptions.** (1) Requests are independent and identically distributed: one
request does not change how the next is answered, and the traffic mix does not
drift during the comparison (a daily cycle slower than the comparison is fine; a
mix that changes between the canary's first and last hour is not covered). (2)
For the paired checks, both models answer the *same* requests (shadow traffic,
or a canary that also records live's answer), so each request gives one paired
observation. (3) For the unpaired check, the split of requests between the models
is random (not by customer, region or time of day), each side independent. (4)
For the accuracy check, which requests get a label must not depend on the
answers (labelling a random sample, or user feedback that arrives regardless of
which model answered).

**Method.** For observations X_i in a known range [lo, hi] with mean mu, the
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

**Several classes.** The class-distribution check is about the largest gap
between a class's share under canary and under live. It says ``no_go`` when the
average of the 2K one-sided e-processes "class c is at most margin above / below
live" reaches 1 / alpha (an average of e-processes is one, and it beats
Bonferroni whenever two classes move, as they must since shares add up to 1), and
``go`` when every one of the 2K opposite e-processes does (an intersection-union
test, which needs no correction). See :class:`PairedDifference`.

**Speed against certainty.** Raise ``margin`` (or ``max_rate``) to decide sooner
and accept larger differences; lower ``alpha`` for fewer false alarms at the cost
of about log(1/alpha) more in the numerator below. A gap d beyond the margin, in a
quantity whose per-request variance is v, is decided after roughly
2 v (log(2K/alpha) + 2) / d^2 requests (K = 1 for rate and accuracy, with alpha / 2
for alpha): with shadow traffic a class's paired difference has v ~ 0.15 in the
demo's traffic, so a 5-point shift against a 1-point margin takes about a
thousand paired requests, a collapse a few dozen. The running time grows as
1 / d^2: halving the margin's distance to the effect quadruples it.

Everything here is pure: numbers in, numbers out, numpy only, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, Self

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Decision = Literal["go", "no_go", "undecided"]
Side = Literal["above", "below"]

PRIOR_WEIGHT = 1.0
"""Pseudo-observations at the middle of the range in the running mean used for centring."""

_NEWTON_STEPS = 40
_BISECTION_STEPS = 40


def _psi(fraction: float) -> float:
    """The exponential-type cumulant bound -log(1 - u) - u of Fan's inequality."""
    return -math.log1p(-fraction) - fraction


@dataclass(frozen=True, slots=True)
class BetGrid:
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

    def to_dict(self) -> dict[str, list[float]]:
        return {"fractions": list(self.fractions), "weights": list(self.weights)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Sequence[float]]) -> BetGrid:
        return cls(fractions=tuple(data["fractions"]), weights=tuple(data["weights"]))


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

    def to_dict(self) -> dict[str, Any]:
        return {name: np.asarray(part).tolist() for name, part in zip(self._fields, self, strict=True)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MeanSums:
        return cls(*(np.asarray(data[name], dtype=np.float64) for name in cls._fields))


def _check_range(lo: float, hi: float) -> None:
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"need finite lo < hi, got lo={lo!r}, hi={hi!r}")


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")


def _check_margin(margin: float, name: str = "margin") -> None:
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


def _relative_e_value(sums: MeanSums, null: npt.ArrayLike, side: Side, bets: BetGrid, threshold: float) -> FloatArray:
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
    _check_alpha(alpha)
    threshold = math.log(2.0 / alpha)
    return (
        _bound(sums, threshold, lo, hi, "above", bets),
        _bound(sums, threshold, lo, hi, "below", bets),
    )


def _e_value(log_e: float) -> float:
    """exp(log_e), capped below the float maximum so it stays finite in JSON."""
    return math.exp(max(min(log_e, 700.0), -700.0))


def _p_value(log_e: float, multiplicity: int = 1) -> float:
    """The always-valid p-value min(1, multiplicity / E) of an e-process."""
    # An e-value below 1 is no evidence at all (p = 1); exp(-log_e) would overflow for a very negative one.
    return min(1.0, multiplicity * math.exp(-min(max(log_e, 0.0), 700.0)))


def _points(share: float) -> str:
    """A share difference in percentage points: '35', '4.2', '-0.8'."""
    points = share * 100
    text = f"{points:.0f}" if abs(points) >= 9.95 else f"{points:.1f}"
    return text.removesuffix(".0")


def _level(alpha: float) -> str:
    return f"{(1 - alpha) * 100:g}%"


class _MeanState:
    """Sums of one or more means over a shared range: the mutable core the checks are built on."""

    __slots__ = ("hi", "lo", "sums")

    def __init__(self, lo: float, hi: float, shape: tuple[int, ...] = ()) -> None:
        _check_range(lo, hi)
        self.lo, self.hi = float(lo), float(hi)
        self.sums = MeanSums.zeros(shape)

    def update_many(self, values: npt.ArrayLike) -> None:
        x = np.asarray(values, dtype=np.float64)
        if x.size == 0:
            return
        x = x.reshape((*self.sums.n.shape, -1))
        self.sums = running_sums(x, self.lo, self.hi, start=self.sums).at((..., -1))

    def merge(self, other: _MeanState) -> None:
        if (self.lo, self.hi) != (other.lo, other.hi) or self.sums.n.shape != other.sums.n.shape:
            raise ValueError("can only merge states over the same range and shape")
        self.sums = self.sums.plus(other.sums)

    def mean(self) -> FloatArray:
        middle = (self.lo + self.hi) / 2
        means: FloatArray = np.divide(
            self.sums.total, self.sums.n, out=np.full(self.sums.n.shape, middle), where=self.sums.n > 0
        )
        return means


class BoundedMeanCS:
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

    def __init__(self, lo: float = 0.0, hi: float = 1.0, alpha: float = 0.05, bets: BetGrid = DEFAULT_BETS) -> None:
        _check_alpha(alpha)
        self._state = _MeanState(lo, hi)
        self.alpha = float(alpha)
        self.bets = bets

    @property
    def lo(self) -> float:
        return self._state.lo

    @property
    def hi(self) -> float:
        return self._state.hi

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
        return _e_value(float(log_e_value(self.sums, null, "above", self.bets)))

    def e_value_below(self, null: float) -> float:
        """Return the e-process value against "mean >= null": large means evidence the mean is below it."""
        return _e_value(float(log_e_value(self.sums, null, "below", self.bets)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "BoundedMeanCS",
            "lo": self.lo,
            "hi": self.hi,
            "alpha": self.alpha,
            "bets": self.bets.to_dict(),
            "sums": self.sums.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BoundedMeanCS:
        _expect_kind(data, "BoundedMeanCS")
        restored = cls(data["lo"], data["hi"], data["alpha"], BetGrid.from_dict(data["bets"]))
        restored._state.sums = MeanSums.from_dict(data["sums"])
        return restored


def _expect_kind(data: Mapping[str, Any], kind: str) -> None:
    if data.get("kind") != kind:
        raise ValueError(f"not a checkpoint of a {kind}: kind is {data.get('kind')!r}")


class DecisionPaths(NamedTuple):
    """Per stream and time (same shape as the input), whether a check says no_go and whether it says go."""

    no_go: BoolArray
    go: BoolArray


def _class_indices(labels: npt.ArrayLike | Sequence[str], classes: Sequence[str]) -> npt.NDArray[np.intp]:
    """Class indices of ``labels``: integers are taken as indices, strings are looked up in ``classes``."""
    raw = np.asarray(labels)
    if raw.size == 0:
        return np.zeros(raw.shape, dtype=np.intp)
    if raw.dtype.kind in "iu":
        indices = raw.astype(np.intp)
    elif raw.dtype.kind in "USO":
        lookup = {name: i for i, name in enumerate(classes)}
        try:
            indices = np.vectorize(lookup.__getitem__, otypes=[np.intp])(raw)
        except KeyError as error:
            raise ValueError(f"unknown class {error.args[0]!r}; classes are {list(classes)}") from None
    else:
        raise ValueError(f"labels must be class names or integer indices, got dtype {raw.dtype}")
    if np.any(indices < 0) or np.any(indices >= len(classes)):
        raise ValueError(f"class indices must lie in [0, {len(classes)}), got {np.unique(indices).tolist()}")
    return indices


def _one_hot_differences(canary: npt.NDArray[np.intp], live: npt.NDArray[np.intp], n_classes: int) -> FloatArray:
    """X[..., c, t] = 1[canary_t = c] - 1[live_t = c] for int label arrays of shape (..., T)."""
    classes = np.arange(n_classes)[:, None]
    differences: FloatArray = (canary[..., None, :] == classes).astype(np.float64) - (
        live[..., None, :] == classes
    ).astype(np.float64)
    return differences


def _check_classes(classes: Sequence[str] | int) -> tuple[str, ...]:
    names = tuple(f"class {i}" for i in range(classes)) if isinstance(classes, int) else tuple(classes)
    if len(names) < 2 or len(set(names)) != len(names):
        raise ValueError("need at least two distinct classes")
    return names


class PairedDifference:
    """Canary vs live class distribution on paired requests, with a practical margin per class share.

    For class c and a request answered by both models, X = 1[canary says c] -
    1[live says c] lies in [-1, 1] and has mean delta_c = P(canary says c) -
    P(live says c). The check is about the largest gap D = max_c |delta_c| (the
    L-infinity distance between the two class distributions) against ``margin``:

    - ``no_go`` when the evidence shows D > margin: the *average* of the 2K
      one-sided e-processes "delta_c <= margin" and "delta_c >= -margin" reaches
      1 / alpha. Under D <= margin every one of them is a test supermartingale, so
      their average is one too and errs with probability <= alpha. This dominates
      Bonferroni (the average is at least the largest one over 2K) and is quicker
      when several classes move at once, as they must: shares add up to 1.
    - ``go`` when the evidence shows D < margin: *every* one of the 2K one-sided
      e-processes "delta_c >= margin" and "delta_c <= -margin" reaches 1 / alpha
      (an intersection-union test: if D >= margin, the class at the gap is a true
      null and alone bounds the error by alpha; no multiplicity correction).
    - ``undecided`` otherwise.

    ``distance_bounds`` are the always-valid bounds on D obtained by inverting the
    same two tests, so the decision is exactly "lower bound above the margin" or
    "upper bound below it". ``intervals`` gives each class's own always-valid
    interval (Bonferroni, alpha / K per class) for the detail view.

    Default margin 0.01: the canary may give any class up to 1 point more or less of
    the traffic than live does. A smaller margin blocks smaller shifts but takes
    longer to say go; it should not be 0, since then huge traffic blocks any
    retrain, however harmless the difference.

    >>> check = PairedDifference(["invoice", "contract", "other"], margin=0.05)
    >>> _ = check.update_many(["invoice"] * 60, ["invoice", "contract", "other"] * 20)
    >>> check.decision
    'no_go'
    >>> print(check.explain())
    canary answers invoice 67 points more often than live; the largest class gap is at least 27 points \
(95% always-valid bound), beyond the margin of 5: no-go.
    """

    def __init__(
        self,
        classes: Sequence[str] | int,
        margin: float = 0.01,
        alpha: float = 0.05,
        bets: BetGrid = DEFAULT_BETS,
    ) -> None:
        _check_alpha(alpha)
        _check_margin(margin)
        self.classes = _check_classes(classes)
        self.margin = float(margin)
        self.alpha = float(alpha)
        self.bets = bets
        self._state = _MeanState(-1.0, 1.0, (len(self.classes),))

    def update(self, canary: str | int, live: str | int) -> Self:
        """Add one request answered by both models (class names or indices)."""
        return self.update_many([canary], [live])

    def update_many(self, canary: npt.ArrayLike | Sequence[str], live: npt.ArrayLike | Sequence[str]) -> Self:
        """Add requests in order: ``canary[i]`` and ``live[i]`` answered the same request."""
        canary_indices = np.ravel(_class_indices(canary, self.classes))
        live_indices = np.ravel(_class_indices(live, self.classes))
        if canary_indices.shape != live_indices.shape:
            raise ValueError("canary and live need one answer each per request")
        self._state.update_many(_one_hot_differences(canary_indices, live_indices, len(self.classes)))
        return self

    def merge(self, other: PairedDifference) -> Self:
        """Add another replica's state (disjoint requests); see :meth:`BoundedMeanCS.merge`."""
        if (self.classes, self.margin, self.alpha, self.bets) != (other.classes, other.margin, other.alpha, other.bets):
            raise ValueError("can only merge checks with the same classes, margin, alpha and bets")
        self._state.merge(other._state)
        return self

    @property
    def n(self) -> int:
        return int(self._state.sums.n[0])

    @property
    def sums(self) -> MeanSums:
        """The state: eight sums per class (arrays of shape (K,))."""
        return self._state.sums

    @property
    def estimates(self) -> dict[str, float]:
        """Canary's share minus live's, per class."""
        return dict(zip(self.classes, self._state.mean().tolist(), strict=True))

    @property
    def intervals(self) -> dict[str, tuple[float, float]]:
        """Each class's always-valid interval for its share difference; all K hold together at 1 - alpha."""
        lower, upper = cs_bounds(self.sums, self.alpha / len(self.classes), -1.0, 1.0, self.bets)
        return {name: (float(lo), float(hi)) for name, lo, hi in zip(self.classes, lower, upper, strict=True)}

    @property
    def distance(self) -> float:
        """The observed largest class gap max_c |canary share - live share|."""
        return float(np.max(np.abs(self._state.mean())))

    @property
    def distance_bounds(self) -> tuple[float, float]:
        """Always-valid (lower, upper) bounds on the largest class gap D, each wrong with probability <= alpha."""
        lower, upper = _distance_bounds(self.sums, self.alpha, self.bets, class_axis=-1)
        return float(lower), float(upper)

    @property
    def decision(self) -> Decision:
        return _as_decision(_paired_class_paths(self.sums, self.margin, self.alpha, self.bets, class_axis=-1))

    def evidence(self) -> dict[str, Any]:
        """The numbers behind the decision, for the verdict object.

        ``estimate``, ``cs_lower`` and ``cs_upper`` are about the largest class gap D;
        ``e_value_no_go`` is the evidence that D exceeds the margin and
        ``e_value_go`` that it is below it (a decision is taken when one reaches
        1 / alpha); ``p_value_*`` are the matching always-valid p-values, 1 / e.
        ``classes`` has each class's estimate and interval.
        """
        outside, inside = _margin_e_values(self.sums, self.margin, self.bets, class_axis=-1)
        lower, upper = self.distance_bounds
        estimates, intervals = self.estimates, self.intervals
        return {
            "check": "class_distribution",
            "decision": self.decision,
            "estimate": self.distance,
            "cs_lower": lower,
            "cs_upper": upper,
            "focus_class": self._focus_class(),
            "classes": {
                name: {"estimate": estimates[name], "cs_lower": intervals[name][0], "cs_upper": intervals[name][1]}
                for name in self.classes
            },
            "margin": self.margin,
            "alpha": self.alpha,
            "n": self.n,
            "e_value_no_go": _e_value(float(outside)),
            "p_value_no_go": _p_value(float(outside)),
            "e_value_go": _e_value(float(inside)),
            "p_value_go": _p_value(float(inside)),
        }

    def _focus_class(self) -> str:
        """The class the explanation names: the one with the largest observed gap."""
        return self.classes[int(np.argmax(np.abs(self._state.mean())))]

    def explain(self) -> str:
        """One sentence a release manager understands."""
        margin = f"the allowed margin is {_points(self.margin)} points"
        if self.n == 0:
            return f"no paired requests yet, so nothing is decided; {margin}."
        focus = self._focus_class()
        gap = self.estimates[focus]
        seen = f"canary answers {focus} {_points(abs(gap))} points {'more' if gap >= 0 else 'less'} often than live"
        lower, upper = self.distance_bounds
        level = _level(self.alpha)
        decision = self.decision
        if decision == "no_go":
            return (
                f"{seen}; the largest class gap is at least {_points(lower)} points ({level} always-valid bound), "
                f"beyond the margin of {_points(self.margin)}: no-go."
            )
        if decision == "go":
            return (
                f"every class is within the {_points(self.margin)}-point margin: the largest class gap is at most "
                f"{_points(upper)} points ({level} always-valid bound; {seen}): go."
            )
        return (
            f"not decided after {self.n:,} paired requests: {seen}; the largest class gap is between "
            f"{_points(lower)} and {_points(upper)} points ({level} always-valid), {margin}."
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "PairedDifference",
            "classes": list(self.classes),
            "margin": self.margin,
            "alpha": self.alpha,
            "bets": self.bets.to_dict(),
            "sums": self.sums.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PairedDifference:
        _expect_kind(data, "PairedDifference")
        restored = cls(data["classes"], data["margin"], data["alpha"], BetGrid.from_dict(data["bets"]))
        restored._state.sums = MeanSums.from_dict(data["sums"])
        return restored

    @classmethod
    def decision_paths(
        cls,
        canary: npt.ArrayLike,
        live: npt.ArrayLike,
        n_classes: int,
        margin: float = 0.01,
        alpha: float = 0.05,
        bets: BetGrid = DEFAULT_BETS,
    ) -> DecisionPaths:
        """Decisions after every request of many simulated streams at once.

        ``canary`` and ``live`` are integer class indices of shape streams x time;
        entry ``[s, t]`` of the result is what this check decides after the first
        t + 1 requests of stream s: the same answers as one-by-one updates.
        """
        _check_margin(margin)
        _check_alpha(alpha)
        names = _check_classes(n_classes)
        canary_indices = _class_indices(canary, names)
        live_indices = _class_indices(live, names)
        sums = running_sums(_one_hot_differences(canary_indices, live_indices, n_classes), -1.0, 1.0)
        return _paired_class_paths(sums, margin, alpha, bets, class_axis=-2)


def _per_class(margin: npt.ArrayLike, class_axis: int) -> FloatArray:
    """A margin (one, or one per stream and time) shaped to broadcast against per-class sums."""
    m = np.asarray(margin, dtype=np.float64)
    return np.expand_dims(m, class_axis) if m.ndim else m


def _margin_e_values(
    sums: MeanSums, margin: npt.ArrayLike, bets: BetGrid, class_axis: int
) -> tuple[FloatArray, FloatArray]:
    """log e-values of "some class is beyond +-margin" (average) and "all are within" (minimum)."""
    m = _per_class(margin, class_axis)
    k = sums.n.shape[class_axis]
    outside = np.logaddexp(log_e_value(sums, m, "above", bets), log_e_value(sums, -m, "below", bets))
    inside = np.minimum(log_e_value(sums, m, "below", bets), log_e_value(sums, -m, "above", bets))
    average: FloatArray = np.logaddexp.reduce(outside, axis=class_axis) - math.log(2 * k)
    least: FloatArray = np.min(inside, axis=class_axis)
    return average, least


def _paired_class_paths(
    sums: MeanSums, margin: npt.ArrayLike, alpha: float, bets: BetGrid, class_axis: int
) -> DecisionPaths:
    """no_go: the average of the 2K outside e-processes reaches 1/alpha; go: each inside one does."""
    m = _per_class(margin, class_axis)
    k = sums.n.shape[class_axis]
    threshold = math.log(1 / alpha)
    outside = _relative_e_value(sums, m, "above", bets, threshold)
    outside += _relative_e_value(sums, -m, "below", bets, threshold)
    no_go = np.sum(outside, axis=class_axis) >= 2 * k
    inside = np.minimum(
        _relative_e_value(sums, m, "below", bets, threshold), _relative_e_value(sums, -m, "above", bets, threshold)
    )
    go = np.min(inside, axis=class_axis) >= 1.0
    return DecisionPaths(no_go=no_go, go=go & ~no_go)


def _distance_bounds(sums: MeanSums, alpha: float, bets: BetGrid, class_axis: int) -> tuple[FloatArray, FloatArray]:
    """Always-valid bounds on D = max_c |delta_c| by inverting the no_go and go tests over the margin.

    The no_go test at margin d is decreasing in d and the go test increasing, so the
    bounds are where each stops (or starts) rejecting; found by bisection, keeping
    the rejected side so that the bounds are never narrower than the exact ones.
    """
    shape = np.sum(sums.n, axis=class_axis).shape
    # Brackets: the no_go test rejects at lower_rejected (checked at 0 below) and not at
    # lower_free; the go test holds at upper_rejected (1 means "nowhere": D <= 1 anyway).
    lower_rejected, lower_free = np.zeros(shape), np.ones(shape)
    upper_rejected, upper_free = np.ones(shape), np.zeros(shape)
    for _ in range(_BISECTION_STEPS):
        middle = (lower_rejected + lower_free) / 2
        paths = _paired_class_paths(sums, middle, alpha, bets, class_axis)
        lower_rejected = np.where(paths.no_go, middle, lower_rejected)
        lower_free = np.where(paths.no_go, lower_free, middle)
        middle = (upper_rejected + upper_free) / 2
        go = _paired_class_paths(sums, middle, alpha, bets, class_axis).go
        upper_rejected = np.where(go, middle, upper_rejected)
        upper_free = np.where(go, upper_free, middle)
    zero = _paired_class_paths(sums, np.zeros(shape), alpha, bets, class_axis).no_go
    lower: FloatArray = np.where(zero, lower_rejected, 0.0)
    return lower, upper_rejected


def _as_decision(paths: DecisionPaths) -> Decision:
    if bool(paths.no_go):
        return "no_go"
    return "go" if bool(paths.go) else "undecided"


def _explain_shares(
    *,
    focus: str,
    estimate: float,
    lower: float,
    upper: float,
    margin: float,
    alpha: float,
    decision: Decision,
    n: int,
    requests: str,
) -> str:
    """The sentence of a class-share check."""
    margin_text = f"the allowed margin is {_points(margin)} points"
    if n == 0:
        return f"no {requests} yet, so nothing is decided; {margin_text}."
    direction = "more" if estimate >= 0 else "less"
    gap = (
        f"canary answers {focus} {_points(abs(estimate))} points {direction} often than live "
        f"({_level(alpha)} always-valid interval {_points(lower)} to {_points(upper)} points)"
    )
    if decision == "no_go":
        return f"{gap}; {margin_text}: no-go."
    if decision == "go":
        return f"every class is within the {_points(margin)}-point margin; the largest gap: {gap}: go."
    return f"not decided after {n:,} {requests}: {gap}; {margin_text}."


class UnpairedDifference:
    """Canary vs live class distribution when the models answer *different* requests (a traffic split).

    Each class keeps two one-sample confidence sequences for the class's share,
    canary's and live's, each at alpha / (2K); their difference interval is
    [canary lower - live upper, canary upper - live lower], and all K hold together
    with probability >= 1 - alpha (Bonferroni). ``no_go`` when some class's
    interval lies entirely outside [-margin, margin], ``go`` when every one lies
    inside. Without pairing, a difference carries the variance of both samples, so
    this decides later than the paired check on the same traffic: prefer shadow
    traffic when there is a choice.

    >>> check = UnpairedDifference(["invoice", "contract"], margin=0.05)
    >>> _ = check.update_many(canary=(["invoice"] * 9 + ["contract"]) * 20, live=["invoice", "contract"] * 100)
    >>> check.decision
    'no_go'
    >>> print(check.explain())
    canary answers invoice 40 points more often than live (95% always-valid interval 16 to 62 points); \
the allowed margin is 5 points: no-go.
    """

    def __init__(
        self,
        classes: Sequence[str] | int,
        margin: float = 0.01,
        alpha: float = 0.05,
        bets: BetGrid = DEFAULT_BETS,
    ) -> None:
        _check_alpha(alpha)
        _check_margin(margin)
        self.classes = _check_classes(classes)
        self.margin = float(margin)
        self.alpha = float(alpha)
        self.bets = bets
        self._canary = _MeanState(0.0, 1.0, (len(self.classes),))
        self._live = _MeanState(0.0, 1.0, (len(self.classes),))

    def update_canary(self, label: str | int) -> Self:
        return self.update_many(canary=[label])

    def update_live(self, label: str | int) -> Self:
        return self.update_many(live=[label])

    def update_many(
        self,
        canary: npt.ArrayLike | Sequence[str] = (),
        live: npt.ArrayLike | Sequence[str] = (),
    ) -> Self:
        """Add canary answers and live answers (any numbers of each, from different requests)."""
        k = len(self.classes)
        classes = np.arange(k)[:, None]
        canary_indices = np.ravel(_class_indices(canary, self.classes))
        live_indices = np.ravel(_class_indices(live, self.classes))
        self._canary.update_many((canary_indices[None, :] == classes).astype(np.float64))
        self._live.update_many((live_indices[None, :] == classes).astype(np.float64))
        return self

    def merge(self, other: UnpairedDifference) -> Self:
        if (self.classes, self.margin, self.alpha, self.bets) != (other.classes, other.margin, other.alpha, other.bets):
            raise ValueError("can only merge checks with the same classes, margin, alpha and bets")
        self._canary.merge(other._canary)
        self._live.merge(other._live)
        return self

    @property
    def n_canary(self) -> int:
        return int(self._canary.sums.n[0])

    @property
    def n_live(self) -> int:
        return int(self._live.sums.n[0])

    @property
    def estimates(self) -> dict[str, float]:
        difference = self._canary.mean() - self._live.mean()
        return dict(zip(self.classes, difference.tolist(), strict=True))

    def _difference_bounds(self, alpha: float) -> tuple[FloatArray, FloatArray]:
        side_alpha = alpha / (2 * len(self.classes))
        canary_lower, canary_upper = cs_bounds(self._canary.sums, side_alpha, 0.0, 1.0, self.bets)
        live_lower, live_upper = cs_bounds(self._live.sums, side_alpha, 0.0, 1.0, self.bets)
        return canary_lower - live_upper, canary_upper - live_lower

    @property
    def intervals(self) -> dict[str, tuple[float, float]]:
        lower, upper = self._difference_bounds(self.alpha)
        return {name: (float(lo), float(hi)) for name, lo, hi in zip(self.classes, lower, upper, strict=True)}

    def _decide(self, alpha: float) -> Decision:
        lower, upper = self._difference_bounds(alpha)
        if np.any(lower > self.margin) or np.any(upper < -self.margin):
            return "no_go"
        if np.all(lower > -self.margin) and np.all(upper < self.margin):
            return "go"
        return "undecided"

    @property
    def decision(self) -> Decision:
        return self._decide(self.alpha)

    def evidence(self) -> dict[str, Any]:
        """As :meth:`PairedDifference.evidence`, with always-valid p-values found by searching over alpha.

        There is no single e-process for a difference of two independent sequences,
        so the p-value of a decision is the smallest error rate at which it would
        be taken (valid because the intervals shrink as alpha grows).
        """
        estimates, intervals = self.estimates, self.intervals
        focus = max(self.classes, key=lambda name: abs(estimates[name]))
        if self.decision == "no_go":
            lower, upper = self._difference_bounds(self.alpha)
            excess = np.maximum(lower - self.margin, -self.margin - upper)
            focus = self.classes[int(np.argmax(excess))]
        return {
            "check": "class_distribution_unpaired",
            "decision": self.decision,
            "estimate": estimates[focus],
            "cs_lower": intervals[focus][0],
            "cs_upper": intervals[focus][1],
            "focus_class": focus,
            "classes": {
                name: {"estimate": estimates[name], "cs_lower": intervals[name][0], "cs_upper": intervals[name][1]}
                for name in self.classes
            },
            "margin": self.margin,
            "alpha": self.alpha,
            "n_canary": self.n_canary,
            "n_live": self.n_live,
            "p_value_no_go": _smallest_alpha(lambda a: self._decide(a) == "no_go"),
            "p_value_go": _smallest_alpha(lambda a: self._decide(a) == "go"),
        }

    def explain(self) -> str:
        facts = self.evidence()
        return _explain_shares(
            focus=facts["focus_class"],
            estimate=facts["estimate"],
            lower=facts["cs_lower"],
            upper=facts["cs_upper"],
            margin=self.margin,
            alpha=self.alpha,
            decision=facts["decision"],
            n=min(self.n_canary, self.n_live),
            requests="requests on each side",
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "UnpairedDifference",
            "classes": list(self.classes),
            "margin": self.margin,
            "alpha": self.alpha,
            "bets": self.bets.to_dict(),
            "canary_sums": self._canary.sums.to_dict(),
            "live_sums": self._live.sums.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UnpairedDifference:
        _expect_kind(data, "UnpairedDifference")
        restored = cls(data["classes"], data["margin"], data["alpha"], BetGrid.from_dict(data["bets"]))
        restored._canary.sums = MeanSums.from_dict(data["canary_sums"])
        restored._live.sums = MeanSums.from_dict(data["live_sums"])
        return restored


def _smallest_alpha(holds: Callable[[float], bool], floor: float = 1e-12) -> float:
    """The smallest alpha in [floor, 1) at which ``holds`` (monotone: once true, true for larger alpha)."""
    top = 1.0 - 1e-9
    if not holds(top):
        return 1.0
    if holds(floor):
        return floor
    low, high = math.log(floor), math.log(top)
    for _ in range(30):
        middle = (low + high) / 2
        if holds(math.exp(middle)):
            high = middle
        else:
            low = middle
    return math.exp(high)


class _OneMeanCheck:
    """Shared machinery of the checks on a single mean with one boundary value."""

    kind = ""
    lo = -1.0
    hi = 1.0

    def __init__(self, alpha: float, bets: BetGrid) -> None:
        _check_alpha(alpha)
        self.alpha = float(alpha)
        self.bets = bets
        self._state = _MeanState(self.lo, self.hi)

    @property
    def boundary(self) -> float:
        raise NotImplementedError

    @property
    def n(self) -> int:
        return int(self._state.sums.n)

    @property
    def sums(self) -> MeanSums:
        return self._state.sums

    @property
    def estimate(self) -> float:
        return float(self._state.mean())

    @property
    def interval(self) -> tuple[float, float]:
        lower, upper = cs_bounds(self.sums, self.alpha, self.lo, self.hi, self.bets)
        return float(lower), float(upper)

    def _log_e_above(self) -> float:
        return float(log_e_value(self.sums, self.boundary, "above", self.bets))

    def _log_e_below(self) -> float:
        return float(log_e_value(self.sums, self.boundary, "below", self.bets))

    def _merge(self, other: _OneMeanCheck) -> None:
        if (self.boundary, self.alpha, self.bets) != (other.boundary, other.alpha, other.bets):
            raise ValueError("can only merge checks with the same settings")
        self._state.merge(other._state)

    def _evidence(self, no_go_log: float, go_log: float, decision: Decision) -> dict[str, Any]:
        lower, upper = self.interval
        return {
            "check": self.kind,
            "decision": decision,
            "estimate": self.estimate,
            "cs_lower": lower,
            "cs_upper": upper,
            "alpha": self.alpha,
            "n": self.n,
            "e_value_no_go": _e_value(no_go_log - math.log(2)),
            "p_value_no_go": _p_value(no_go_log, 2),
            "e_value_go": _e_value(go_log - math.log(2)),
            "p_value_go": _p_value(go_log, 2),
        }

    def _sums_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "bets": self.bets.to_dict(), "sums": self.sums.to_dict()}


class RateBelow(_OneMeanCheck):
    """The rate of an event (live and canary disagreeing) against an allowed maximum.

    Keeps a (1 - alpha) confidence sequence for the rate of 0/1 (or [0, 1]-valued)
    observations: ``no_go`` when its lower end exceeds ``max_rate``, ``go`` when its
    upper end is below it. Disagreement is a signal for review, so a caller may map
    ``no_go`` to a warning. Each wrong decision has probability at most alpha / 2.

    >>> check = RateBelow(max_rate=0.2)
    >>> _ = check.update_many([1, 0, 0, 0, 0, 0, 0, 0, 0, 0] * 30)
    >>> check.decision
    'go'
    >>> print(check.explain())
    canary and live disagree on 10.0% of requests (95% always-valid interval 4.2% to 17.7%); \
the allowed maximum is 20%: go.
    """

    kind = "disagreement_rate"
    lo = 0.0
    hi = 1.0

    def __init__(self, max_rate: float = 0.2, alpha: float = 0.05, bets: BetGrid = DEFAULT_BETS) -> None:
        if not 0 < max_rate < 1:
            raise ValueError(f"max_rate must lie in (0, 1), got {max_rate!r}")
        super().__init__(alpha, bets)
        self.max_rate = float(max_rate)

    @property
    def boundary(self) -> float:
        return self.max_rate

    def update(self, event: float | bool) -> Self:
        """Add one request: 1 (or True) when the event happened (the models disagreed)."""
        return self.update_many([event])

    def update_many(self, events: npt.ArrayLike) -> Self:
        self._state.update_many(np.ravel(np.asarray(events, dtype=np.float64)))
        return self

    def merge(self, other: RateBelow) -> Self:
        self._merge(other)
        return self

    @property
    def decision(self) -> Decision:
        return _as_decision(_one_boundary_paths(self.sums, self.max_rate, self.alpha, self.bets, no_go_side="above"))

    def evidence(self) -> dict[str, Any]:
        """Estimate, interval and e-values; ``e_value_no_go`` is the evidence the rate exceeds the maximum."""
        facts = self._evidence(self._log_e_above(), self._log_e_below(), self.decision)
        facts["max_rate"] = self.max_rate
        return facts

    def explain(self) -> str:
        facts = self.evidence()
        limit = f"the allowed maximum is {self.max_rate * 100:g}%"
        if self.n == 0:
            return f"no paired requests yet, so nothing is decided; {limit}."
        rate = (
            f"canary and live disagree on {facts['estimate'] * 100:.1f}% of requests "
            f"({_level(self.alpha)} always-valid interval {facts['cs_lower'] * 100:.1f}% to "
            f"{facts['cs_upper'] * 100:.1f}%)"
        )
        return _with_decision(rate, limit, facts["decision"], self.n, "paired requests")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "RateBelow", "max_rate": self.max_rate, **self._sums_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RateBelow:
        _expect_kind(data, "RateBelow")
        restored = cls(data["max_rate"], data["alpha"], BetGrid.from_dict(data["bets"]))
        restored._state.sums = MeanSums.from_dict(data["sums"])
        return restored

    @classmethod
    def decision_paths(
        cls, events: npt.ArrayLike, max_rate: float = 0.2, alpha: float = 0.05, bets: BetGrid = DEFAULT_BETS
    ) -> DecisionPaths:
        """Decisions after every request, for 0/1 arrays of shape streams x time."""
        _check_alpha(alpha)
        sums = running_sums(events, 0.0, 1.0)
        return _one_boundary_paths(sums, max_rate, alpha, bets, no_go_side="above")


class PairedAccuracy(_OneMeanCheck):
    """Canary vs live accuracy on labelled requests both answered: non-inferiority with a margin.

    For a labelled request, X = 1[canary right] - 1[live right] lies in [-1, 1]
    and has mean delta = canary accuracy - live accuracy. With a (1 - alpha)
    confidence sequence for delta: ``no_go`` when its upper end is below -margin
    (the canary is worse by more than the margin), ``go`` when its lower end is
    above -margin (not worse by more than the margin). Each wrong decision has
    probability at most alpha / 2, the usual one-sided 2.5% of non-inferiority tests.

    Default margin 0.02: the canary may be up to 2 points less accurate than live.

    >>> check = PairedAccuracy(margin=0.02)
    >>> _ = check.update_many(canary_correct=[1, 0] * 200, live_correct=[1, 1] * 200)
    >>> check.decision
    'no_go'
    >>> print(check.explain())
    canary is 50 points less accurate than live on 400 labelled requests \
(95% always-valid interval -58 to -40 points); the allowed margin is 2 points: no-go.
    """

    kind = "accuracy"

    def __init__(self, margin: float = 0.02, alpha: float = 0.05, bets: BetGrid = DEFAULT_BETS) -> None:
        _check_margin(margin)
        super().__init__(alpha, bets)
        self.margin = float(margin)

    @property
    def boundary(self) -> float:
        return -self.margin

    def update(self, canary_correct: bool | float, live_correct: bool | float) -> Self:
        """Add one labelled request: whether each model's answer was right."""
        return self.update_many([canary_correct], [live_correct])

    def update_many(self, canary_correct: npt.ArrayLike, live_correct: npt.ArrayLike) -> Self:
        canary = np.ravel(np.asarray(canary_correct, dtype=np.float64))
        live = np.ravel(np.asarray(live_correct, dtype=np.float64))
        if canary.shape != live.shape:
            raise ValueError("canary_correct and live_correct need one value each per request")
        for values in (canary, live):
            if not np.all((values == 0) | (values == 1)):
                raise ValueError("correctness must be 0 or 1 (or bool)")
        self._state.update_many(canary - live)
        return self

    def merge(self, other: PairedAccuracy) -> Self:
        self._merge(other)
        return self

    @property
    def decision(self) -> Decision:
        # no_go: evidence delta < -margin ("below"); go: evidence delta > -margin ("above").
        return _as_decision(_one_boundary_paths(self.sums, -self.margin, self.alpha, self.bets, no_go_side="below"))

    def evidence(self) -> dict[str, Any]:
        """Estimate, interval and e-values; ``e_value_no_go`` is the evidence the canary is worse than the margin."""
        facts = self._evidence(self._log_e_below(), self._log_e_above(), self.decision)
        facts["margin"] = self.margin
        return facts

    def explain(self) -> str:
        facts = self.evidence()
        limit = f"the allowed margin is {_points(self.margin)} points"
        if self.n == 0:
            return f"no labelled requests yet, so nothing is decided; {limit}."
        estimate = facts["estimate"]
        direction = "less" if estimate < 0 else "more"
        where = "" if facts["decision"] == "undecided" else f" on {self.n:,} labelled requests"
        gap = (
            f"canary is {_points(abs(estimate))} points {direction} accurate than live{where} "
            f"({_level(self.alpha)} always-valid interval {_points(facts['cs_lower'])} to "
            f"{_points(facts['cs_upper'])} points)"
        )
        return _with_decision(gap, limit, facts["decision"], self.n, "labelled requests")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "PairedAccuracy", "margin": self.margin, **self._sums_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PairedAccuracy:
        _expect_kind(data, "PairedAccuracy")
        restored = cls(data["margin"], data["alpha"], BetGrid.from_dict(data["bets"]))
        restored._state.sums = MeanSums.from_dict(data["sums"])
        return restored

    @classmethod
    def decision_paths(
        cls, differences: npt.ArrayLike, margin: float = 0.02, alpha: float = 0.05, bets: BetGrid = DEFAULT_BETS
    ) -> DecisionPaths:
        """Decisions after every labelled request, for arrays of X = canary right - live right (streams x time)."""
        _check_margin(margin)
        _check_alpha(alpha)
        sums = running_sums(differences, -1.0, 1.0)
        return _one_boundary_paths(sums, -margin, alpha, bets, no_go_side="below")


def _one_boundary_paths(
    sums: MeanSums, boundary: float, alpha: float, bets: BetGrid, no_go_side: Side
) -> DecisionPaths:
    """no_go / go of a check on one mean with one boundary, each side of the (1 - alpha) CS at alpha / 2."""
    threshold = math.log(2 / alpha)
    go_side: Side = "below" if no_go_side == "above" else "above"
    no_go = _relative_e_value(sums, boundary, no_go_side, bets, threshold) >= 1.0
    go = _relative_e_value(sums, boundary, go_side, bets, threshold) >= 1.0
    return DecisionPaths(no_go=no_go, go=go & ~no_go)


def _with_decision(finding: str, limit: str, decision: Decision, n: int, requests: str) -> str:
    if decision == "no_go":
        return f"{finding}; {limit}: no-go."
    if decision == "go":
        return f"{finding}; {limit}: go."
    return f"not decided after {n:,} {requests}: {finding}; {limit}."


__all__ = [
    "DEFAULT_BETS",
    "PRIOR_WEIGHT",
    "BetGrid",
    "BoundedMeanCS",
    "Decision",
    "DecisionPaths",
    "MeanSums",
    "PairedAccuracy",
    "PairedDifference",
    "RateBelow",
    "Side",
    "UnpairedDifference",
    "cs_bounds",
    "log_e_value",
    "running_sums",
]
