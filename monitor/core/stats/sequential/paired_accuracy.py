"""Canary vs live accuracy on labelled requests both models answered: non-inferiority, read at any time.

Theory: docs/sequential.md.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import numpy.typing as npt

from monitor.core.stats.confidence_sequence import (
    DEFAULT_BETS,
    BetGrid,
    Decision,
    MeanState,
    check_alpha,
    check_margin,
    running_sums,
)
from monitor.core.stats.sequential.base import (
    DecisionPaths,
    OneMeanCheck,
    as_decision,
    level,
    one_boundary_paths,
    points,
)


class PairedAccuracy(OneMeanCheck):
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

    kind = "PairedAccuracy"
    settings = ("margin",)
    requests = "labelled requests"
    check = "accuracy"

    margin: float = 0.02
    alpha: float = 0.05
    bets: BetGrid = DEFAULT_BETS
    _state: MeanState = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        check_margin(self.margin)
        self.margin = float(self.margin)
        self._start()

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

    @property
    def decision(self) -> Decision:
        # no_go: evidence delta < -margin ("below"); go: evidence delta > -margin ("above").
        return as_decision(one_boundary_paths(self.sums, -self.margin, self.alpha, self.bets, no_go_side="below"))

    def evidence(self) -> dict[str, Any]:
        """Estimate, interval and e-values; ``e_value_no_go`` is the evidence the canary is worse than the margin."""
        facts = self._evidence(self._log_e_below(), self._log_e_above(), self.decision)
        facts["margin"] = self.margin
        return facts

    def _limit(self) -> str:
        return f"the allowed margin is {points(self.margin)} points"

    def _finding(self, limit: str, blocking: bool) -> str:
        facts = self.evidence()
        estimate = facts["estimate"]
        direction = "less" if estimate < 0 else "more"
        where = "" if facts["decision"] == "undecided" else f" on {self.n:,} labelled requests"
        gap = (
            f"canary is {points(abs(estimate))} points {direction} accurate than live{where} "
            f"({level(self.alpha)} always-valid interval {points(facts['cs_lower'])} to "
            f"{points(facts['cs_upper'])} points)"
        )
        return self._with_decision(gap, limit, facts["decision"], blocking)

    @classmethod
    def decision_paths(
        cls, differences: npt.ArrayLike, margin: float = 0.02, alpha: float = 0.05, bets: BetGrid = DEFAULT_BETS
    ) -> DecisionPaths:
        """Decisions after every labelled request, for arrays of X = canary right - live right (streams x time)."""
        check_margin(margin)
        check_alpha(alpha)
        sums = running_sums(differences, -1.0, 1.0)
        return one_boundary_paths(sums, -margin, alpha, bets, no_go_side="below")
