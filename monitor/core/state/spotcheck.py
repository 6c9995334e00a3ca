"""Picking disagreements for human review: a rate cap per minute, priority to the classes that matter.

Each request is offered at most once (the join pairs a request once), so each is picked
at most once. Within each minute of event time at most ``max_per_minute`` cases are
picked; a share of that budget is kept for cases that involve a priority class (a
wrong ``invoice`` may cost most), so ordinary disagreements cannot crowd them out.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import msgspec


class SpotcheckCase(msgspec.Struct):
    """A request where live and canary disagree, as a reviewer sees it (docs/contract.md §2)."""

    request_id: str
    deployment: str
    live_label: str
    canary_label: str
    live_scores: dict[str, float] | None
    canary_scores: dict[str, float] | None
    features: dict[str, Any] | None
    ts: float
    canary_version: str | None = None
    priority: float = 1.0


class SpotcheckSampler(msgspec.Struct):
    """Decides which disagreements go to review.

    >>> sampler = SpotcheckSampler(max_per_minute=2, priority={"invoice": 3.0}, priority_share=0.5)
    >>> [sampler.offer(60.0, "other", "contract"), sampler.offer(61.0, "other", "contract"),
    ...  sampler.offer(62.0, "invoice", "other"), sampler.offer(63.0, "invoice", "other")]
    [True, False, True, False]
    """

    max_per_minute: int = 30
    priority: dict[str, float] = msgspec.field(default_factory=dict)
    priority_share: float = 0.5
    minute: float = -1.0
    taken: int = 0
    taken_ordinary: int = 0
    offered: int = 0
    picked: int = 0

    def weight(self, live_label: str, canary_label: str) -> float:
        """How much a disagreement between these two answers matters (1 for ordinary classes)."""
        return max(self.priority.get(live_label, 1.0), self.priority.get(canary_label, 1.0))

    def offer(self, ts: float, live_label: str, canary_label: str) -> bool:
        """Whether the disagreement at event time ``ts`` is picked for review."""
        self.offered += 1
        minute = ts - ts % 60.0
        if minute != self.minute:
            self.minute, self.taken, self.taken_ordinary = minute, 0, 0
        if self.taken >= self.max_per_minute:
            return False
        if self.weight(live_label, canary_label) <= 1.0:
            ordinary_budget = int(self.max_per_minute * (1 - self.priority_share))
            if self.taken_ordinary >= ordinary_budget:
                return False
            self.taken_ordinary += 1
        self.taken += 1
        self.picked += 1
        return True


class ReviewQueue(msgspec.Struct):
    """Picked cases waiting for a label, newest kept when full; a label takes a case out."""

    size: int = 100
    cases: OrderedDict[str, SpotcheckCase] = msgspec.field(default_factory=OrderedDict)

    def push(self, case: SpotcheckCase) -> None:
        self.cases[case.request_id] = case
        while len(self.cases) > self.size:
            self.cases.popitem(last=False)

    def settle(self, request_id: str) -> bool:
        """Take a labelled case out; whether it was waiting."""
        return self.cases.pop(request_id, None) is not None
