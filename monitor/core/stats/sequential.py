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

**Method.** Each check keeps confidence sequences of bounded means by betting
(:mod:`monitor.core.stats.confidence_sequence`, where the construction and its proof are):
the evidence is an e-process, a nonnegative supermartingale under the null, and Ville's
inequality bounds the chance that it ever reaches 1 / alpha. The state is a few running sums
per mean, and two replicas' states merge by adding them.

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
from typing import Any, NamedTuple, Self

import numpy as np
import numpy.typing as npt

from monitor.core.stats.confidence_sequence import (
    BISECTION_STEPS,
    DEFAULT_BETS,
    BetGrid,
    BoolArray,
    Decision,
    FloatArray,
    MeanState,
    MeanSums,
    Side,
    check_alpha,
    check_margin,
    cs_bounds,
    e_value_of,
    expect_kind,
    log_e_value,
    p_value_of,
    relative_e_value,
    running_sums,
)


def _points(share: float) -> str:
    """A share difference in percentage points: '35', '4.2', '-0.8'."""
    points = share * 100
    text = f"{points:.0f}" if abs(points) >= 9.95 else f"{points:.1f}"
    return text.removesuffix(".0")


def _level(alpha: float) -> str:
    return f"{(1 - alpha) * 100:g}%"


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
        check_alpha(alpha)
        check_margin(margin)
        self.classes = _check_classes(classes)
        self.margin = float(margin)
        self.alpha = float(alpha)
        self.bets = bets
        self._state = MeanState(-1.0, 1.0, (len(self.classes),))

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
        """Add another replica's state (disjoint requests), as ``BoundedMeanCS.merge`` does."""
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
            "e_value_no_go": e_value_of(float(outside)),
            "p_value_no_go": p_value_of(float(outside)),
            "e_value_go": e_value_of(float(inside)),
            "p_value_go": p_value_of(float(inside)),
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
        expect_kind(data, "PairedDifference")
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
        check_margin(margin)
        check_alpha(alpha)
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
    outside = relative_e_value(sums, m, "above", bets, threshold)
    outside += relative_e_value(sums, -m, "below", bets, threshold)
    no_go = np.sum(outside, axis=class_axis) >= 2 * k
    inside = np.minimum(
        relative_e_value(sums, m, "below", bets, threshold), relative_e_value(sums, -m, "above", bets, threshold)
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
    for _ in range(BISECTION_STEPS):
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
        check_alpha(alpha)
        check_margin(margin)
        self.classes = _check_classes(classes)
        self.margin = float(margin)
        self.alpha = float(alpha)
        self.bets = bets
        self._canary = MeanState(0.0, 1.0, (len(self.classes),))
        self._live = MeanState(0.0, 1.0, (len(self.classes),))

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
        expect_kind(data, "UnpairedDifference")
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
        check_alpha(alpha)
        self.alpha = float(alpha)
        self.bets = bets
        self._state = MeanState(self.lo, self.hi)

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
            "e_value_no_go": e_value_of(no_go_log - math.log(2)),
            "p_value_no_go": p_value_of(no_go_log, 2),
            "e_value_go": e_value_of(go_log - math.log(2)),
            "p_value_go": p_value_of(go_log, 2),
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
        expect_kind(data, "RateBelow")
        restored = cls(data["max_rate"], data["alpha"], BetGrid.from_dict(data["bets"]))
        restored._state.sums = MeanSums.from_dict(data["sums"])
        return restored

    @classmethod
    def decision_paths(
        cls, events: npt.ArrayLike, max_rate: float = 0.2, alpha: float = 0.05, bets: BetGrid = DEFAULT_BETS
    ) -> DecisionPaths:
        """Decisions after every request, for 0/1 arrays of shape streams x time."""
        check_alpha(alpha)
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
        check_margin(margin)
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
        expect_kind(data, "PairedAccuracy")
        restored = cls(data["margin"], data["alpha"], BetGrid.from_dict(data["bets"]))
        restored._state.sums = MeanSums.from_dict(data["sums"])
        return restored

    @classmethod
    def decision_paths(
        cls, differences: npt.ArrayLike, margin: float = 0.02, alpha: float = 0.05, bets: BetGrid = DEFAULT_BETS
    ) -> DecisionPaths:
        """Decisions after every labelled request, for arrays of X = canary right - live right (streams x time)."""
        check_margin(margin)
        check_alpha(alpha)
        sums = running_sums(differences, -1.0, 1.0)
        return _one_boundary_paths(sums, -margin, alpha, bets, no_go_side="below")


def _one_boundary_paths(
    sums: MeanSums, boundary: float, alpha: float, bets: BetGrid, no_go_side: Side
) -> DecisionPaths:
    """no_go / go of a check on one mean with one boundary, each side of the (1 - alpha) CS at alpha / 2."""
    threshold = math.log(2 / alpha)
    go_side: Side = "below" if no_go_side == "above" else "above"
    no_go = relative_e_value(sums, boundary, no_go_side, bets, threshold) >= 1.0
    go = relative_e_value(sums, boundary, go_side, bets, threshold) >= 1.0
    return DecisionPaths(no_go=no_go, go=go & ~no_go)


def _with_decision(finding: str, limit: str, decision: Decision, n: int, requests: str) -> str:
    if decision == "no_go":
        return f"{finding}; {limit}: no-go."
    if decision == "go":
        return f"{finding}; {limit}: go."
    return f"not decided after {n:,} {requests}: {finding}; {limit}."


__all__ = [
    "DecisionPaths",
    "PairedAccuracy",
    "PairedDifference",
    "RateBelow",
    "UnpairedDifference",
]
