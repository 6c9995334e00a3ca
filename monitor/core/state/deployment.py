"""Everything one deployment remembers: totals, the canary comparisons, the join, the windows.

All of it is counts that add up, so two states of disjoint parts of a stream merge
into the state of the whole (:meth:`DeploymentState.merge`), and all of it is msgspec
structs, stored and copied by one codec (:mod:`monitor.core.state.codec`).

A *comparison* covers everything since a canary ``model_version`` first appeared
(in event time): the canary's answers of that version, and live's answers from
the start of the window in which it appeared. The current comparison is the one
whose version appeared last, so the verdict always speaks of the newest candidate;
answers of an older canary version still count in that version's own comparison.

Live answers are placed by their event time, not their arrival: when a comparison
starts, the live answers already counted in the kept windows from its start on are
taken into it, so it does not matter whether the live or the canary topic is read
first (as long as the live answers are within the kept windows).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any
from zlib import crc32

import msgspec
import numpy as np

from monitor.core.events import TOO_MANY_CLASSES, UNKNOWN_CLASS, Feedback, Prediction
from monitor.core.evidence import EvidenceSettings, SequentialEvidence
from monitor.core.state.codec import clone
from monitor.core.state.counts import ClassCounts
from monitor.core.state.feature_intake import FeatureIntake
from monitor.core.state.features import FeatureStats
from monitor.core.state.feedback import Answers, FeedbackJoin, Scored, Truth
from monitor.core.state.join import RequestJoin
from monitor.core.state.outcomes import Outcomes
from monitor.core.state.spotcheck import ReviewQueue, SpotcheckCase, SpotcheckSampler
from monitor.core.state.windows import Window, Windows
from monitor.errors import EventError

MAX_COMPARISONS = 8


class Comparison(msgspec.Struct):
    """Canary of one version against live, since that version first appeared."""

    canary_version: str
    started_at: float
    # Live answers count from here (the start of the window in which the version appeared).
    live_from: float = 0.0
    live: ClassCounts = msgspec.field(default_factory=ClassCounts)
    canary: ClassCounts = msgspec.field(default_factory=ClassCounts)
    live_versions: ClassCounts = msgspec.field(default_factory=ClassCounts)
    # live label -> canary label -> requests answered by both models
    confusion: dict[str, dict[str, int]] = msgspec.field(default_factory=dict)
    last_ts: float = 0.0
    outcomes: Outcomes = msgspec.field(default_factory=Outcomes)
    evidence: SequentialEvidence | None = None
    # role -> what its predictions' features and scores looked like (binned over the deployment's layout)
    features: dict[str, FeatureStats] = msgspec.field(default_factory=dict)

    @property
    def pairs(self) -> int:
        return sum(n for row in self.confusion.values() for n in row.values())

    @property
    def disagreements(self) -> int:
        return sum(n for live, row in self.confusion.items() for canary, n in row.items() if live != canary)

    def live_version(self) -> str | None:
        """The live version seen most in this comparison."""
        if not self.live_versions.counts:
            return None
        version = max(self.live_versions.counts.items(), key=lambda item: item[1])[0]
        return version or None

    def merge(self, other: Comparison) -> Comparison:
        self.started_at = min(self.started_at, other.started_at)
        self.live_from = min(self.live_from, other.live_from)
        self.last_ts = max(self.last_ts, other.last_ts)
        self.live.merge(other.live)
        self.canary.merge(other.canary)
        self.live_versions.merge(other.live_versions)
        for live, theirs in other.confusion.items():
            row = self.confusion.setdefault(live, {})
            for canary, n in theirs.items():
                row[canary] = row.get(canary, 0) + n
        self.outcomes.merge(other.outcomes)
        if self.evidence is not None and other.evidence is not None:
            self.evidence.merge(other.evidence)
        for role, stats in other.features.items():
            mine = self.features.get(role)
            if mine is None:
                self.features[role] = clone(stats)
            else:
                mine.merge(stats)
        return self


def _backfill_live(comparison: Comparison, windows: Windows, start: float, end: float) -> None:
    """Add the live answers of the kept windows in [start, end) to a comparison."""
    for window in windows.recent():
        if start <= window.start < end:
            comparison.live.merge(window.live)
            comparison.live_versions.merge(window.live_versions)


def _no_events() -> dict[str, int]:
    return {"live": 0, "canary": 0, "feedback": 0}


def _no_totals() -> dict[str, dict[str, ClassCounts]]:
    return {"live": {}, "canary": {}}


class DeploymentState(msgspec.Struct, dict=True):
    """The mergeable state of one deployment (:meth:`new` makes one from its settings).

    The fields are the state, stored and copied by monitor.core.state.codec; the rest
    (lookups, the current comparison, the hot path's bound methods, the reference data from
    the config, the outbox of picked cases) is rebuilt or set again by whoever made it.
    """

    name: str
    classes: list[str] = msgspec.field(default_factory=list)
    # whether the classes are configured (an unknown class is then refused), not learned
    fixed_classes: bool = False
    max_classes: int = 64
    events: dict[str, int] = msgspec.field(default_factory=_no_events)
    # role -> model version ("" when absent) -> class counts: all time, every version.
    totals: dict[str, dict[str, ClassCounts]] = msgspec.field(default_factory=_no_totals)
    comparisons: dict[str, Comparison] = msgspec.field(default_factory=dict)
    join: RequestJoin = msgspec.field(default_factory=lambda: RequestJoin(max_open=100_000, ttl_s=600.0))
    windows: Windows = msgspec.field(default_factory=lambda: Windows(length_s=60.0, kept=60))
    feedback: FeedbackJoin = msgspec.field(default_factory=lambda: FeedbackJoin(100_000, 3 * 86_400.0))
    spotcheck_labels: int = 0
    sampler: SpotcheckSampler = msgspec.field(default_factory=SpotcheckSampler)
    review: ReviewQueue = msgspec.field(default_factory=ReviewQueue)
    # parameters of each comparison's sequential tests; None keeps fixed-sample checks only
    evidence_settings: EvidenceSettings | None = None
    watermark: float = 0.0
    intake: FeatureIntake = msgspec.field(default_factory=FeatureIntake)
    # window start -> features of live answers that came before a comparison counted them (as the windows
    # keep live class counts): a comparison that starts later takes those from its start on
    live_features: dict[float, FeatureStats] = msgspec.field(default_factory=dict)

    @classmethod
    def new(
        cls,
        name: str,
        classes: list[str] | None = None,
        max_classes: int = 64,
        max_open_requests: int = 100_000,
        join_ttl_s: float = 600.0,
        window_s: float = 60.0,
        windows_kept: int = 60,
        feedback_max_requests: int = 100_000,
        feedback_ttl_s: float = 3 * 86_400.0,
        spotcheck: SpotcheckSampler | None = None,
        review_queue_size: int = 100,
        evidence: EvidenceSettings | None = None,
        intake: FeatureIntake | None = None,
    ) -> DeploymentState:
        """An empty state; ``classes`` fixes the classes (None: they are learned from the data)."""
        return cls(
            name,
            classes=list(classes or []),
            fixed_classes=classes is not None,
            max_classes=max_classes,
            join=RequestJoin(max_open=max_open_requests, ttl_s=join_ttl_s),
            windows=Windows(length_s=window_s, kept=windows_kept),
            feedback=FeedbackJoin(max_requests=feedback_max_requests, ttl_s=feedback_ttl_s),
            sampler=spotcheck or SpotcheckSampler(),
            review=ReviewQueue(review_queue_size),
            evidence_settings=evidence,
            intake=intake or FeatureIntake(),
        )

    def __post_init__(self) -> None:
        # class name -> the one str object of that name: every answer held in the joins then
        # shares it, rather than each keeping its own copy from the JSON parser.
        self._class_names = {label: label for label in self.classes}
        self.current: Comparison | None = None
        self._pick_current()
        # cases picked since the service last drained them to the spot-check topic
        self.outbox: list[SpotcheckCase] = []
        # the reference profile's feature state and class shares, when the deployment has one (from the config)
        self.reference_features: FeatureStats | None = None
        self.reference_classes: dict[str, float] | None = None
        self._bind_intake()

    def _bind_intake(self) -> None:
        # the hot path holds the intake's bound appends
        self._hold_live = self.intake.pending["live"].append
        self._hold_canary = self.intake.pending["canary"].append
        self._sample_every = self.intake.settings.sample_every

    # -- the hot path -------------------------------------------------------------------------

    def add_prediction(self, role: str, prediction: Prediction) -> None:
        """Fold one live or canary prediction into the state (raises EventError for a bad class).

        Hot path: counts are bumped on the dicts inside ClassCounts directly, on purpose.
        """
        label = self._class_names.get(prediction.label)
        if label is None:
            label = self._admit(prediction.label)
        ts = prediction.ts
        if ts > self.watermark:
            self.watermark = ts
        version = sys.intern(prediction.model_version) if prediction.model_version else ""
        by_version = self.totals[role]
        totals = by_version.get(version)
        if totals is None:
            totals = by_version[version] = ClassCounts()
        counts = totals.counts
        counts[label] = counts.get(label, 0) + 1
        self.events[role] += 1
        windows = self.windows
        window = windows._current
        if window is None or not window.start <= ts < window.start + windows.length_s:
            window = windows.at(ts)
        if role == "canary":
            comparison = self.comparisons.get(version)
            if comparison is None:
                comparison = self._start_comparison(version, ts)
            elif ts < comparison.started_at:
                self._start_earlier(comparison, ts)
            counts = comparison.canary.counts
            counts[label] = counts.get(label, 0) + 1
            if ts > comparison.last_ts:
                comparison.last_ts = ts
            counts = window.canary.counts
            counts[label] = counts.get(label, 0) + 1
            if (prediction.features is not None or prediction.scores is not None) and (
                self._sample_every == 1 or crc32(prediction.request_id.encode()) % self._sample_every == 0
            ):
                # binned per chunk, in tick()
                self._hold_canary(
                    (role, version, prediction.features, prediction.scores, label, prediction.request_id, ts)
                )
            pair = self.join.add_canary(prediction.request_id, label, version, ts, prediction.scores)
        else:
            comparison = self.current
            key: str | None = None
            if comparison is not None and ts >= comparison.live_from:
                key = comparison.canary_version
                counts = comparison.live.counts
                counts[label] = counts.get(label, 0) + 1
                counts = comparison.live_versions.counts
                counts[version] = counts.get(version, 0) + 1
            counts = window.live.counts
            counts[label] = counts.get(label, 0) + 1
            counts = window.live_versions.counts
            counts[version] = counts.get(version, 0) + 1
            if (prediction.features is not None or prediction.scores is not None) and (
                self._sample_every == 1 or crc32(prediction.request_id.encode()) % self._sample_every == 0
            ):
                self._hold_live((role, key, prediction.features, prediction.scores, label, prediction.request_id, ts))
            pair = self.join.add_live(prediction.request_id, label, ts, prediction.scores)
        if pair is not None:
            live_label, canary_label = pair.live_label or "", pair.canary_label or ""
            self._count_pair(prediction.request_id, live_label, canary_label, pair.canary_version or "", ts, window)
            if live_label != canary_label and self.sampler.offer(ts, live_label, canary_label):
                # The first answer's scores were kept in the join; this answer carries its own.
                first_scores, scores = pair.scores, prediction.scores
                live_scores, canary_scores = (first_scores, scores) if role == "canary" else (scores, first_scores)
                self._pick(SpotcheckCase(
                    prediction.request_id, self.name, live_label, canary_label, live_scores, canary_scores,
                    prediction.features, ts, pair.canary_version or None,
                    self.sampler.weight(live_label, canary_label),
                ))

    def add_feedback(self, feedback: Feedback) -> None:
        """Join one feedback event to its request and score the answers once both are here."""
        label = feedback.label
        if label is not None:
            label = self._class_names.get(label) or self._admit(label)
        if feedback.ts > self.watermark:
            self.watermark = feedback.ts
        self.events["feedback"] += 1
        if feedback.label is not None:
            self.intake.note_truth(feedback.request_id, feedback.label)
        if feedback.source == "spotcheck":
            self.spotcheck_labels += 1
            self.review.settle(feedback.request_id)
        truth = Truth(feedback.ts, label, feedback.correct, feedback.source)
        scored = self.feedback.add_truth(feedback.request_id, truth)
        if scored is not None:
            self._fold(scored)

    def _pick(self, case: SpotcheckCase) -> None:
        self.outbox.append(case)
        self.review.push(case)

    def drain_outbox(self) -> list[SpotcheckCase]:
        """The cases picked since the last call (for the spot-check topic)."""
        cases, self.outbox = self.outbox, []
        return cases

    def _fold(self, scored: Scored) -> None:
        comparison = self.comparisons.get(scored.answers.canary_version)
        if comparison is not None:
            comparison.outcomes.add(scored)
            if comparison.evidence is not None and scored.canary_right is not None:
                comparison.evidence.add_outcome(scored.canary_right, scored.live_right)

    def _count_pair(
        self, request_id: str, live_label: str, canary_label: str, canary_version: str, ts: float, window: Window
    ) -> None:
        """Count a request both models answered, at event time ``ts`` (in ``window``, the window of ``ts``)."""
        comparison = self.comparisons.get(canary_version)
        if comparison is not None:
            row = comparison.confusion.get(live_label)
            if row is None:
                row = comparison.confusion[live_label] = {}
            row[canary_label] = row.get(canary_label, 0) + 1
            if comparison.evidence is not None:
                comparison.evidence.add_pair(canary_label, live_label)
        scored = self.feedback.add_answers(request_id, Answers(ts, live_label, canary_label, canary_version))
        if scored is not None:
            self._fold(scored)
        window.pairs += 1
        if live_label != canary_label:
            window.disagreements += 1

    def _admit(self, label: str) -> str:
        if self.fixed_classes:
            raise EventError(
                UNKNOWN_CLASS, f"class {label[:64]!r} is not one of the configured classes of {self.name!r}"
            )
        if len(self.classes) >= self.max_classes:
            raise EventError(
                TOO_MANY_CLASSES,
                f"{self.name!r} already has {self.max_classes} classes (max_classes); {label[:64]!r} is refused",
            )
        self.classes.append(label)
        self._class_names[label] = label
        return label

    def _start_comparison(self, version: str, ts: float) -> Comparison:
        live_from = ts - ts % self.windows.length_s
        comparison = Comparison(canary_version=version, started_at=ts, live_from=live_from, last_ts=ts)
        if self.evidence_settings is not None:
            comparison.evidence = SequentialEvidence(tuple(self.classes), self.evidence_settings)
        # Live answers that arrived before this version's first canary answer, but belong after it.
        _backfill_live(comparison, self.windows, live_from, float("inf"))
        self.comparisons[version] = comparison
        self._backfill_live_features(comparison, live_from, float("inf"))
        self._pick_current()
        return comparison

    def _start_earlier(self, comparison: Comparison, ts: float) -> None:
        """A canary answer older than the comparison's start arrived late: move the start back."""
        live_from = ts - ts % self.windows.length_s
        if live_from < comparison.live_from and comparison is self.current:
            _backfill_live(comparison, self.windows, live_from, comparison.live_from)
            self._backfill_live_features(comparison, live_from, comparison.live_from)
            comparison.live_from = live_from
        comparison.started_at = ts
        self._pick_current()

    def _pick_current(self) -> None:
        while len(self.comparisons) > MAX_COMPARISONS:
            oldest = min(self.comparisons.values(), key=lambda c: c.started_at)
            del self.comparisons[oldest.canary_version]
        self.current = max(self.comparisons.values(), key=lambda c: c.started_at, default=None)

    # -- housekeeping -------------------------------------------------------------------------

    def tick(self) -> None:
        """Expire join entries past their TTL at the watermark (and bin waiting features); call once per batch."""
        if self.intake.waiting >= self.intake.settings.flush_rows:
            self.flush_features()
        self.join.expire(self.watermark)
        self.feedback.expire(self.watermark)
        for comparison in self.comparisons.values():
            if comparison.evidence is not None:
                comparison.evidence.flush()

    def flush_features(self) -> None:
        """Bin the features waiting in the intake (before anything reads or saves the feature state)."""
        self.intake.flush(self._feature_stats, self._place_live)

    def _place_live(
        self, features: Sequence[dict[str, Any] | None], scores: Sequence[dict[str, Any] | None],
        times: Sequence[float],
    ) -> None:
        """Live rows that came with no comparison: kept by window, and counted in the current comparison
        when their event time is within it (they may have been read before the canary's first answer)."""
        layout = self.intake.layout
        assert layout is not None
        length = self.windows.length_s
        # Nearly always one or two windows per chunk: group by window with numpy, bin each group once.
        event_times = np.asarray(times, dtype=np.float64)
        starts = event_times - event_times % length
        current = self.current
        for start in np.unique(starts).tolist():
            if starts[0] == starts[-1] == start:
                group_features, group_scores = features, scores
            else:
                where = np.flatnonzero(starts == start).tolist()
                group_features, group_scores = [features[i] for i in where], [scores[i] for i in where]
            batch = FeatureStats(layout)
            batch.update(group_features, group_scores)
            kept = self.live_features.get(start)
            if kept is None:
                self.live_features[start] = batch
            else:
                kept.merge(batch)
            if current is not None and start >= current.live_from:
                target = self._feature_stats("live", current.canary_version)
                if target is not None:
                    target.merge(batch)
        while len(self.live_features) > self.windows.kept:
            del self.live_features[min(self.live_features)]

    def _backfill_live_features(self, comparison: Comparison, start: float, end: float) -> None:
        """Add the kept live features of windows in [start, end) to a comparison."""
        for window_start, stats in sorted(self.live_features.items()):
            if start <= window_start < end:
                target = self._feature_stats("live", comparison.canary_version)
                if target is not None:
                    target.merge(stats)

    def _feature_stats(self, role: str, key: str | None) -> FeatureStats | None:
        """The feature state of a role in the comparison of canary version ``key`` (made when first needed)."""
        comparison = self.comparisons.get(key) if key is not None else None
        layout = self.intake.layout
        if comparison is None or layout is None:
            return None
        stats = comparison.features.get(role)
        if stats is None:
            stats = comparison.features[role] = FeatureStats(layout)
        return stats

    def use_features(self, intake: FeatureIntake, reference: FeatureStats | None) -> None:
        """Take a configured intake (and reference), carrying over what this state's intake holds.

        Feature state binned over another layout than the configured one (a new profile) is let go.
        """
        old = self.intake
        old.flush(self._feature_stats, self._place_live)
        if intake.layout is not None and old.layout is not None and intake.layout != old.layout:
            for comparison in self.comparisons.values():
                comparison.features.clear()
            self.live_features.clear()
        intake.take_over(old)
        self.intake = intake
        self._bind_intake()
        self.reference_features = reference

    def merge(self, other: DeploymentState) -> DeploymentState:
        """Add another state of the same deployment into this one (e.g. another replica's)."""
        for label in other.classes:
            if label not in self._class_names:
                self.classes.append(label)
                self._class_names[label] = label
        for role, count in other.events.items():
            self.events[role] += count
        for role, by_version in other.totals.items():
            for version, counts in by_version.items():
                self.totals[role].setdefault(version, ClassCounts()).merge(counts)
        # A replica that had not seen a canary version yet kept its live answers in windows only.
        for version, own in self.comparisons.items():
            if version not in other.comparisons:
                _backfill_live(own, other.windows, own.live_from, float("inf"))
        for version, comparison in other.comparisons.items():
            mine = self.comparisons.get(version)
            if mine is None:
                copied = clone(comparison)
                _backfill_live(copied, self.windows, copied.live_from, float("inf"))
                self.comparisons[version] = copied
            else:
                mine.merge(comparison)
        self._pick_current()
        self.join.merge(other.join)
        self.feedback.merge(other.feedback)
        self.spotcheck_labels += other.spotcheck_labels
        self.sampler.offered += other.sampler.offered
        self.sampler.picked += other.sampler.picked
        for case in other.review.cases.values():
            self.review.push(case)
        self.windows.merge(other.windows)
        self.intake.merge(other.intake)
        for start, stats in other.live_features.items():
            kept = self.live_features.get(start)
            if kept is None:
                self.live_features[start] = clone(stats)
            else:
                kept.merge(stats)
        self.watermark = max(self.watermark, other.watermark)
        return self
