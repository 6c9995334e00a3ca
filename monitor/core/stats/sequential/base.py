"""What the sequential checks share: the checkpoint form, merging, the sentence and the one-mean machinery.

Theory (guarantee, assumptions, method, running times): docs/sequential.md.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Self

import msgspec
import numpy as np

from monitor.core.stats.confidence_sequence import (
    BetGrid,
    BoolArray,
    Decision,
    MeanState,
    MeanSums,
    Side,
    check_alpha,
    cs_bounds,
    e_value_of,
    log_e_value,
    p_value_of,
    relative_e_value,
)


class DecisionPaths(NamedTuple):
    """Per stream and time (same shape as the input), whether a check says no_go and whether it says go."""

    no_go: BoolArray
    go: BoolArray


def as_decision(paths: DecisionPaths) -> Decision:
    """The decision of one check from its (scalar) paths."""
    if bool(paths.no_go):
        return "no_go"
    return "go" if bool(paths.go) else "undecided"


def points(share: float) -> str:
    """A share difference in percentage points: '35', '4.2', '-0.8'.

    >>> points(0.35), points(0.042), points(-0.008), points(0.02)
    ('35', '4.2', '-0.8', '2')
    """
    value = share * 100
    text = f"{value:.0f}" if abs(value) >= 9.95 else f"{value:.1f}"
    return text.removesuffix(".0")


def level(alpha: float) -> str:
    """The confidence level of an error rate, as the sentences say it.

    >>> level(0.05)
    '95%'
    """
    return f"{(1 - alpha) * 100:g}%"


def quoted(name: object) -> str:
    """A class or feature name as every sentence quotes it, so that a label such as 2 reads as a name.

    >>> print(quoted("invoice"), quoted(2))
    'invoice' '2'
    """
    return f"'{name}'"


# How a sentence ends when its check is decided: "go", "no-go", or for a check that does not block
# (a failure there only warns), this.
WARNING_ENDING = "a warning, not blocking"


def ending(decision: Decision, blocking: bool = True) -> str:
    """The last words of a decided check's sentence.

    >>> ending("go"), ending("no_go"), ending("no_go", blocking=False)
    ('go', 'no-go', 'a warning, not blocking')
    """
    if decision == "go":
        return "go"
    return "no-go" if blocking else WARNING_ENDING


class SequentialCheck(msgspec.Struct):
    """A check's settings, its state (running sums of a bounded mean) and what follows from them alone.

    A subclass is a msgspec struct whose fields are its settings (``settings``, in order),
    then ``alpha``, ``bets`` and ``_state`` (None until its ``__post_init__`` checks the
    settings and starts the sums; msgspec runs that on decode too, so a stored check is
    checked like a new one); it names what its sentence counts (``requests``) and says
    ``decision``, ``evidence`` and how to word a non-empty state (``_limit``, ``_finding``).
    """

    kind: ClassVar[str] = ""
    settings: ClassVar[tuple[str, ...]] = ()
    requests: ClassVar[str] = "paired requests"
    # the range of each observation
    lo: ClassVar[float] = -1.0
    hi: ClassVar[float] = 1.0

    if TYPE_CHECKING:
        # declared by each subclass, after its settings (a field here would come before them)
        alpha: float
        bets: BetGrid
        _state: MeanState

    def _settings(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.settings}

    def _start(self, shape: tuple[int, ...] = ()) -> None:
        """Check alpha and start the sums of ``shape`` means (a stored state is kept); each subclass's
        ``__post_init__`` calls it once its own settings are checked."""
        check_alpha(self.alpha)
        self.alpha = float(self.alpha)
        if self._state is None:
            self._state = MeanState.empty(self.lo, self.hi, shape)

    @property
    def n(self) -> int:
        return int(np.ravel(self._state.sums.n)[0])

    @property
    def sums(self) -> MeanSums:
        """The state: eight running sums per mean."""
        return self._state.sums

    @property
    def decision(self) -> Decision:
        raise NotImplementedError

    def evidence(self) -> dict[str, Any]:
        raise NotImplementedError

    def merge(self, other: Self) -> Self:
        """Add another replica's state (disjoint requests), as ``BoundedMeanCS.merge`` does."""
        if type(other) is not type(self) or (self._settings(), self.alpha, self.bets) != (
            other._settings(),
            other.alpha,
            other.bets,
        ):
            raise ValueError(f"can only merge checks with the same {', '.join(self.settings)}, alpha and bets")
        self._state.merge(other._state)
        return self

    def explain(self, blocking: bool = True) -> str:
        """One sentence a release manager understands; for a check that does not block, a no-go is a warning."""
        limit = self._limit()
        if self.n == 0:
            return f"no {self.requests} yet, so nothing is decided; {limit}."
        return self._finding(limit, blocking)

    def _limit(self) -> str:
        """The boundary the decision is about, as the sentence says it."""
        raise NotImplementedError

    def _finding(self, limit: str, blocking: bool) -> str:
        """The sentence once there are observations."""
        raise NotImplementedError

    def _with_decision(self, finding: str, limit: str, decision: Decision, blocking: bool) -> str:
        if decision == "undecided":
            return f"not decided after {self.n:,} {self.requests}: {finding}; {limit}."
        return f"{finding}; {limit}: {ending(decision, blocking)}."


class OneMeanCheck(SequentialCheck):
    """A check on a single mean in [lo, hi] against one boundary value, deciding at alpha / 2 a side."""

    check: ClassVar[str] = ""

    @property
    def boundary(self) -> float:
        raise NotImplementedError

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

    def _evidence(self, no_go_log: float, go_log: float, decision: Decision) -> dict[str, Any]:
        lower, upper = self.interval
        return {
            "check": self.check,
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


def one_boundary_paths(sums: MeanSums, boundary: float, alpha: float, bets: BetGrid, no_go_side: Side) -> DecisionPaths:
    """no_go / go of a check on one mean with one boundary, each side of the (1 - alpha) CS at alpha / 2."""
    threshold = math.log(2 / alpha)
    go_side: Side = "below" if no_go_side == "above" else "above"
    no_go = relative_e_value(sums, boundary, no_go_side, bets, threshold) >= 1.0
    go = relative_e_value(sums, boundary, go_side, bets, threshold) >= 1.0
    return DecisionPaths(no_go=no_go, go=go & ~no_go)
