"""The rate of an event (canary and live disagreeing) against an allowed maximum, read at any time.

Theory: docs/sequential.md.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import numpy.typing as npt

from monitor.core.stats.confidence_sequence import DEFAULT_BETS, BetGrid, Decision, MeanState, check_alpha, running_sums
from monitor.core.stats.sequential.base import DecisionPaths, OneMeanCheck, as_decision, level, one_boundary_paths


class RateBelow(OneMeanCheck):
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

    kind = "RateBelow"
    settings = ("max_rate",)
    requests = "paired requests"
    check = "disagreement_rate"
    lo = 0.0
    hi = 1.0

    max_rate: float = 0.2
    alpha: float = 0.05
    bets: BetGrid = DEFAULT_BETS
    _state: MeanState = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if not 0 < self.max_rate < 1:
            raise ValueError(f"max_rate must lie in (0, 1), got {self.max_rate!r}")
        self.max_rate = float(self.max_rate)
        self._start()

    @property
    def boundary(self) -> float:
        return self.max_rate

    def update(self, event: float | bool) -> Self:
        """Add one request: 1 (or True) when the event happened (the models disagreed)."""
        return self.update_many([event])

    def update_many(self, events: npt.ArrayLike) -> Self:
        self._state.update_many(np.ravel(np.asarray(events, dtype=np.float64)))
        return self

    @property
    def decision(self) -> Decision:
        return as_decision(one_boundary_paths(self.sums, self.max_rate, self.alpha, self.bets, no_go_side="above"))

    def evidence(self) -> dict[str, Any]:
        """Estimate, interval and e-values; ``e_value_no_go`` is the evidence the rate exceeds the maximum."""
        facts = self._evidence(self._log_e_above(), self._log_e_below(), self.decision)
        facts["max_rate"] = self.max_rate
        return facts

    def _limit(self) -> str:
        return f"the allowed maximum is {self.max_rate * 100:g}%"

    def _finding(self, limit: str, blocking: bool) -> str:
        facts = self.evidence()
        rate = (
            f"canary and live disagree on {facts['estimate'] * 100:.1f}% of requests "
            f"({level(self.alpha)} always-valid interval {facts['cs_lower'] * 100:.1f}% to "
            f"{facts['cs_upper'] * 100:.1f}%)"
        )
        return self._with_decision(rate, limit, facts["decision"], blocking)

    @classmethod
    def decision_paths(
        cls, events: npt.ArrayLike, max_rate: float = 0.2, alpha: float = 0.05, bets: BetGrid = DEFAULT_BETS
    ) -> DecisionPaths:
        """Decisions after every request, for 0/1 arrays of shape streams x time."""
        check_alpha(alpha)
        sums = running_sums(events, 0.0, 1.0)
        return one_boundary_paths(sums, max_rate, alpha, bets, no_go_side="above")
