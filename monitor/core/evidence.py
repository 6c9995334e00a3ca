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

from dataclasses import dataclass, field
from typing import Any

from monitor.core.stats.sequential import PairedAccuracy, PairedDifference, RateBelow

OTHER = "(other)"


@dataclass(frozen=True)
class EvidenceSettings:
    """The parameters of the three tests."""

    alpha: float = 0.05
    class_margin: float = 0.01
    max_disagreement: float = 0.2
    accuracy_margin: float = 0.02


@dataclass
class SequentialEvidence:
    """The sequential tests of one comparison, with their pending inputs."""

    classes: tuple[str, ...]
    settings: EvidenceSettings
    distribution: PairedDifference = field(init=False)
    disagreement: RateBelow = field(init=False)
    accuracy: PairedAccuracy = field(init=False)
    _index: dict[str, int] = field(init=False)
    _canary: list[int] = field(default_factory=list, init=False)
    _live: list[int] = field(default_factory=list, init=False)
    _canary_right: list[bool] = field(default_factory=list, init=False)
    _live_right: list[bool] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        # Classes learned later than the comparison's start share one bucket, so the test's
        # dimension stays fixed (and its merge and checkpoint simple).
        buckets = (*self.classes, OTHER)
        self._index = {label: i for i, label in enumerate(self.classes)}
        self.distribution = PairedDifference(buckets, margin=self.settings.class_margin, alpha=self.settings.alpha)
        self.disagreement = RateBelow(max_rate=self.settings.max_disagreement, alpha=self.settings.alpha)
        self.accuracy = PairedAccuracy(margin=self.settings.accuracy_margin, alpha=self.settings.alpha)

    def add_pair(self, canary_label: str, live_label: str) -> None:
        """Buffer one request answered by both models (hot path)."""
        other = len(self.classes)
        self._canary.append(self._index.get(canary_label, other))
        self._live.append(self._index.get(live_label, other))

    def add_outcome(self, canary_right: bool, live_right: bool) -> None:
        """Buffer one labelled request: whether each model was right."""
        self._canary_right.append(canary_right)
        self._live_right.append(live_right)

    def flush(self) -> None:
        """Fold the buffered answers into the tests (once per batch)."""
        if self._canary:
            self.distribution.update_many(self._canary, self._live)
            self.disagreement.update_many([float(c != v) for c, v in zip(self._canary, self._live, strict=True)])
            self._canary, self._live = [], []
        if self._canary_right:
            self.accuracy.update_many(self._canary_right, self._live_right)
            self._canary_right, self._live_right = [], []

    def merge(self, other: SequentialEvidence) -> SequentialEvidence:
        self.flush()
        other.flush()
        self.distribution.merge(other.distribution)
        self.disagreement.merge(other.disagreement)
        self.accuracy.merge(other.accuracy)
        return self

    def to_dict(self) -> dict[str, Any]:
        self.flush()
        return {
            "classes": list(self.classes),
            "settings": vars(self.settings),
            "distribution": self.distribution.to_dict(),
            "disagreement": self.disagreement.to_dict(),
            "accuracy": self.accuracy.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SequentialEvidence:
        evidence = cls(tuple(data["classes"]), EvidenceSettings(**data["settings"]))
        evidence.distribution = PairedDifference.from_dict(data["distribution"])
        evidence.disagreement = RateBelow.from_dict(data["disagreement"])
        evidence.accuracy = PairedAccuracy.from_dict(data["accuracy"])
        return evidence
