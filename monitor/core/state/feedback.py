"""Joining delayed feedback (the truth) to the requests both models answered, and scoring them.

Feedback arrives seconds to days after the predictions, out of order, sometimes before
them and sometimes twice. Answered requests wait here for their truth, and truths wait
for their requests, each for ``ttl_s`` of event time and at most ``max_requests`` of
them; a truth that can no longer be matched is counted as expired, never dropped
silently. A request is scored once: a later truth for it is a duplicate, except that a
spot-check label settles a request whose canary answer the first feedback (a
``correct`` flag about live) could not judge.

Scoring a request, with the true class known (``label`` feedback), each model is right
when its answer is the truth. With only ``correct`` (about live's answer): live is
right or wrong as said; the canary is right when it agreed with a right live answer,
wrong when it disagreed with a right live answer (there is one true class), wrong when
it agreed with a wrong live answer, and unknown when it disagreed with a wrong one —
that request waits for a spot-check label.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import msgspec


class Answers(msgspec.Struct, gc=False, array_like=True):
    """Both models' answers to one request (a msgspec struct: one is built per pair, in C; no cycles to track;
    stored as an array, since a full join holds a hundred thousand of them)."""

    ts: float
    live_label: str
    canary_label: str
    canary_version: str


class Truth(msgspec.Struct, gc=False, array_like=True):
    """What feedback said about one request."""

    ts: float
    label: str | None
    correct: bool | None
    source: str


@dataclass(slots=True)
class Scored:
    """A scored request: its answers, whether each model was right (None: not known yet), and
    whether what decided the canary's side came from a spot-check label."""

    answers: Answers
    live_right: bool
    canary_right: bool | None
    spotcheck: bool
    # True when this only settles the canary side of a request scored before.
    canary_only: bool = False


class FeedbackStats(msgspec.Struct):
    """What became of feedback: matched, duplicated, settled by a spot-check, expired unmatched."""

    matched: int = 0
    duplicates: int = 0
    settled_by_spotcheck: int = 0
    expired: int = 0
    evicted: int = 0

    def merge(self, other: FeedbackStats) -> FeedbackStats:
        self.matched += other.matched
        self.duplicates += other.duplicates
        self.settled_by_spotcheck += other.settled_by_spotcheck
        self.expired += other.expired
        self.evicted += other.evicted
        return self


def score(answers: Answers, truth: Truth) -> Scored:
    """Judge both answers against one truth (see the module docstring for ``correct``)."""
    spotcheck = truth.source == "spotcheck"
    if truth.label is not None:
        return Scored(answers, answers.live_label == truth.label, answers.canary_label == truth.label, spotcheck)
    live_right = bool(truth.correct)
    agreed = answers.live_label == answers.canary_label
    if live_right:
        return Scored(answers, True, agreed, False)
    return Scored(answers, False, False if agreed else None, False)


class FeedbackJoin(msgspec.Struct):
    """Answered requests and early truths, waiting for each other; bounded in size and time.

    >>> join = FeedbackJoin(max_requests=10, ttl_s=3600)
    >>> join.add_answers("r1", Answers(0.0, "invoice", "other", "v2")) is None
    True
    >>> scored = join.add_truth("r1", Truth(5.0, "other", None, "user"))
    >>> (scored.live_right, scored.canary_right)
    (False, True)
    """

    max_requests: int
    ttl_s: float
    answered: OrderedDict[str, Answers] = msgspec.field(default_factory=OrderedDict)
    early: OrderedDict[str, Truth] = msgspec.field(default_factory=OrderedDict)
    # Scored requests (id -> answers and whether the canary side is still open), to tell
    # a duplicate from a spot-check label that settles an open canary side.
    scored: OrderedDict[str, tuple[Answers, bool]] = msgspec.field(default_factory=OrderedDict)
    stats: FeedbackStats = msgspec.field(default_factory=FeedbackStats)

    def add_answers(self, request_id: str, answers: Answers) -> Scored | None:
        """A request both models answered; scored at once when its truth came first."""
        truth = self.early.pop(request_id, None)
        if truth is not None:
            return self._score(request_id, answers, truth)
        self.answered[request_id] = answers
        while len(self.answered) > self.max_requests:
            self.answered.popitem(last=False)
        return None

    def add_truth(self, request_id: str, truth: Truth) -> Scored | None:
        """A truth; returns what it scored (a request, or the open canary side of one), if anything."""
        answers = self.answered.pop(request_id, None)
        if answers is not None:
            return self._score(request_id, answers, truth)
        done = self.scored.get(request_id)
        if done is not None:
            answers, canary_open = done
            if canary_open and truth.label is not None and truth.source == "spotcheck":
                self.scored[request_id] = (answers, False)
                self.stats.settled_by_spotcheck += 1
                return Scored(
                    answers, answers.live_label == truth.label, answers.canary_label == truth.label, True, True
                )
            self.stats.duplicates += 1
            return None
        if request_id in self.early:
            self.stats.duplicates += 1
            return None
        self.early[request_id] = truth
        while len(self.early) > self.max_requests:
            self.early.popitem(last=False)
            self.stats.evicted += 1
        return None

    def _score(self, request_id: str, answers: Answers, truth: Truth) -> Scored:
        scored = score(answers, truth)
        self.stats.matched += 1
        self.scored[request_id] = (answers, scored.canary_right is None)
        while len(self.scored) > self.max_requests:
            self.scored.popitem(last=False)
        return scored

    def expire(self, now: float) -> None:
        """Let go of everything older than the TTL at event time ``now``; unmatched truths count as expired."""
        horizon = now - self.ttl_s
        answered, scored = self.answered, self.scored
        while answered and next(iter(answered.values())).ts < horizon:
            answered.popitem(last=False)
        while scored and next(iter(scored.values()))[0].ts < horizon:
            scored.popitem(last=False)
        while self.early and next(iter(self.early.values())).ts < horizon:
            self.early.popitem(last=False)
            self.stats.expired += 1

    def merge(self, other: FeedbackJoin) -> FeedbackJoin:
        for request_id, answers in other.answered.items():
            self.answered.setdefault(request_id, answers)
        for request_id, truth in other.early.items():
            self.early.setdefault(request_id, truth)
        for request_id, done in other.scored.items():
            self.scored.setdefault(request_id, done)
        self.stats.merge(other.stats)
        return self
