"""Canary vs live class distribution on paired requests: the largest class-share gap against a margin.

Theory (the 2K one-sided e-processes, why their average and their minimum): docs/sequential.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from monitor.core.stats.confidence_sequence import (
    BISECTION_STEPS,
    DEFAULT_BETS,
    BetGrid,
    Decision,
    FloatArray,
    MeanState,
    MeanSums,
    check_alpha,
    check_margin,
    cs_bounds,
    e_value_of,
    log_e_value,
    p_value_of,
    relative_e_value,
    running_sums,
)
from monitor.core.stats.sequential.base import (
    DecisionPaths,
    SequentialCheck,
    as_decision,
    ending,
    level,
    points,
    quoted,
)


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


class PairedDifference(SequentialCheck):
    """Canary vs live class distribution on paired requests, with a practical margin per class share.

    For class c and a request answered by both models, X = 1[canary says c] -
    1[live says c] lies in [-1, 1] and has mean delta_c = P(canary says c) -
    P(live says c). The check is about the largest gap D = max_c |delta_c| (the
    L-infinity distance between the two class distributions) against ``margin``:
    ``no_go`` when the evidence shows D > margin, ``go`` when it shows D < margin,
    ``undecided`` otherwise; each wrong decision has probability at most alpha.

    ``distance_bounds`` are the always-valid bounds on D obtained by inverting the
    same two tests, so the decision is exactly "lower bound above the margin" or
    "upper bound below it". ``intervals`` gives each class's own always-valid
    interval (Bonferroni, alpha / K per class) for the detail view.

    Default margin 0.01: the canary may give any class up to 1 point more or less of
    the traffic than live does. It should not be 0, since then huge traffic blocks
    any retrain, however harmless the difference.

    >>> check = PairedDifference(["invoice", "contract", "other"], margin=0.05)
    >>> _ = check.update_many(["invoice"] * 60, ["invoice", "contract", "other"] * 20)
    >>> check.decision
    'no_go'
    >>> print(check.explain())
    canary answers 'invoice' 67 points more often than live; the largest class gap is at least 27 points \
(95% always-valid bound), beyond the margin of 5: no-go.
    """

    kind = "PairedDifference"
    settings = ("classes", "margin")
    requests = "paired requests"

    # the class names (a count n is read as "class 0" ... "class n-1"); at least two are needed
    classes: tuple[str, ...] = ()
    margin: float = 0.01
    alpha: float = 0.05
    bets: BetGrid = DEFAULT_BETS
    _state: MeanState = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        check_margin(self.margin)
        self.classes = _check_classes(self.classes)
        self.margin = float(self.margin)
        self._start((len(self.classes),))

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
        return as_decision(_paired_class_paths(self.sums, self.margin, self.alpha, self.bets, class_axis=-1))

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

    def _limit(self) -> str:
        return f"the allowed margin is {points(self.margin)} points"

    def _finding(self, limit: str, blocking: bool) -> str:
        focus = self._focus_class()
        gap = self.estimates[focus]
        more = "more" if gap >= 0 else "less"
        seen = f"canary answers {quoted(focus)} {points(abs(gap))} points {more} often than live"
        lower, upper = self.distance_bounds
        confidence = level(self.alpha)
        decision = self.decision
        if decision == "no_go":
            return (
                f"{seen}; the largest class gap is at least {points(lower)} points ({confidence} always-valid bound), "
                f"beyond the margin of {points(self.margin)}: {ending(decision, blocking)}."
            )
        if decision == "go":
            return (
                f"every class is within the {points(self.margin)}-point margin: the largest class gap is at most "
                f"{points(upper)} points ({confidence} always-valid bound; {seen}): go."
            )
        return (
            f"not decided after {self.n:,} paired requests: {seen}; the largest class gap is between "
            f"{points(lower)} and {points(upper)} points ({confidence} always-valid), {limit}."
        )

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
