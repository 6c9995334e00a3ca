"""Scored outcomes of labelled requests, per comparison: what precision and accuracy are made of."""

from __future__ import annotations

import msgspec

from monitor.core.state.counts import ClassCounts
from monitor.core.state.feedback import Scored

PAIR_KEYS = ("both_right", "canary_only_right", "live_only_right", "both_wrong")


def _no_pairs() -> dict[str, int]:
    return dict.fromkeys(PAIR_KEYS, 0)


class Outcomes(msgspec.Struct):
    """Counts that add up: labelled and correct answers per predicted class and role, the paired
    right/wrong table, and how much rests on spot-check labels."""

    live_labelled: ClassCounts = msgspec.field(default_factory=ClassCounts)
    live_correct: ClassCounts = msgspec.field(default_factory=ClassCounts)
    canary_labelled: ClassCounts = msgspec.field(default_factory=ClassCounts)
    canary_correct: ClassCounts = msgspec.field(default_factory=ClassCounts)
    paired: dict[str, int] = msgspec.field(default_factory=_no_pairs)
    # scored canary answers whose judgement came from a spot-check label
    spotcheck: int = 0
    # requests whose canary side waits for a spot-check label
    unresolved: int = 0

    def add(self, scored: Scored) -> None:
        """Fold one scored request (or the settled canary side of one) in."""
        answers = scored.answers
        if not scored.canary_only:
            self.live_labelled.update(answers.live_label)
            if scored.live_right:
                self.live_correct.update(answers.live_label)
        if scored.canary_right is None:
            self.unresolved += 1
            return
        if scored.canary_only:
            self.unresolved -= 1
        self.canary_labelled.update(answers.canary_label)
        if scored.canary_right:
            self.canary_correct.update(answers.canary_label)
        key = (
            ("both_right" if scored.canary_right else "live_only_right")
            if scored.live_right
            else ("canary_only_right" if scored.canary_right else "both_wrong")
        )
        self.paired[key] += 1
        if scored.spotcheck:
            self.spotcheck += 1

    @property
    def labelled_pairs(self) -> int:
        """Requests where both models' correctness is known."""
        return sum(self.paired.values())

    def merge(self, other: Outcomes) -> Outcomes:
        self.live_labelled.merge(other.live_labelled)
        self.live_correct.merge(other.live_correct)
        self.canary_labelled.merge(other.canary_labelled)
        self.canary_correct.merge(other.canary_correct)
        for key in PAIR_KEYS:
            self.paired[key] += other.paired[key]
        self.spotcheck += other.spotcheck
        self.unresolved += other.unresolved
        return self
