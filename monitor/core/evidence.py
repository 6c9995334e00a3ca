"""Anytime-valid evidence of one comparison: the sequential tests behind the gating checks.

Three tests from :mod:`monitor.core.stats.sequential`, each with its own error rate that
holds however often the verdict is read:

- the class distribution on paired requests (``PairedDifference``, margin on each
  class's share),
- the disagreement rate against an allowed maximum (``RateBelow``),
- accuracy on labelled requests, canary minus live (``PairedAccuracy``, a
  non-inferiority margin).

A single update of those tests costs tens of microseconds, so answers are buffered on
the hot path (an integer append) and folded in with one vectorised ``update_many``
per batch (:meth:`SequentialEvidence.flush`).
"""

from __future__ import annotations

import msgspec

from monitor.core.stats.sequential import PairedAccuracy, PairedDifference, RateBelow

OTHER = "(other)"


class EvidenceSettings(msgspec.Struct, frozen=True):
    """The parameters of the three tests."""

    alpha: float = 0.05
    class_margin: float = 0.01
    max_disagreement: float = 0.2
    accuracy_margin: float = 0.02


class SequentialEvidence(msgspec.Struct, dict=True):
    """The sequential tests of one comparison, with their pending inputs (stored too: encoding never flushes)."""

    classes: tuple[str, ...]
    settings: EvidenceSettings
    # the tests; None only until __post_init__ starts them from the settings (a stored test is kept)
    distribution: PairedDifference = None  # type: ignore[assignment]
    disagreement: RateBelow = None  # type: ignore[assignment]
    accuracy: PairedAccuracy = None  # type: ignore[assignment]
    # class indices and right/wrong of the answers buffered since the last flush
    pending_canary: list[int] = msgspec.field(default_factory=list)
    pending_live: list[int] = msgspec.field(default_factory=list)
    pending_canary_right: list[bool] = msgspec.field(default_factory=list)
    pending_live_right: list[bool] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        # Classes learned later than the comparison's start share one bucket, so the test's
        # dimension stays fixed (and its merge and checkpoint simple).
        self._index = {label: i for i, label in enumerate(self.classes)}
        settings = self.settings
        if self.distribution is None:
            self.distribution = PairedDifference((*self.classes, OTHER), settings.class_margin, settings.alpha)
        if self.disagreement is None:
            self.disagreement = RateBelow(settings.max_disagreement, settings.alpha)
        if self.accuracy is None:
            self.accuracy = PairedAccuracy(settings.accuracy_margin, settings.alpha)

    def add_pair(self, canary_label: str, live_label: str) -> None:
        """Buffer one request answered by both models (hot path)."""
        other = len(self.classes)
        self.pending_canary.append(self._index.get(canary_label, other))
        self.pending_live.append(self._index.get(live_label, other))

    def add_outcome(self, canary_right: bool, live_right: bool) -> None:
        """Buffer one labelled request: whether each model was right."""
        self.pending_canary_right.append(canary_right)
        self.pending_live_right.append(live_right)

    def flush(self) -> None:
        """Fold the buffered answers into the tests (once per batch)."""
        canary, live = self.pending_canary, self.pending_live
        if canary:
            self.distribution.update_many(canary, live)
            self.disagreement.update_many([float(c != v) for c, v in zip(canary, live, strict=True)])
            self.pending_canary, self.pending_live = [], []
        if self.pending_canary_right:
            self.accuracy.update_many(self.pending_canary_right, self.pending_live_right)
            self.pending_canary_right, self.pending_live_right = [], []

    def merge(self, other: SequentialEvidence) -> SequentialEvidence:
        self.flush()
        other.flush()
        self.distribution.merge(other.distribution)
        self.disagreement.merge(other.disagreement)
        self.accuracy.merge(other.accuracy)
        return self
