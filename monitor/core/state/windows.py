"""Tumbling event-time windows of class counts, for dashboards and sinks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from monitor.core.state.counts import ClassCounts


@dataclass(slots=True)
class Window:
    """Counts of one tumbling window, [start, start + length) in event time."""

    start: float
    live: ClassCounts = field(default_factory=ClassCounts)
    canary: ClassCounts = field(default_factory=ClassCounts)
    live_versions: ClassCounts = field(default_factory=ClassCounts)
    pairs: int = 0
    disagreements: int = 0

    def merge(self, other: Window) -> Window:
        self.live.merge(other.live)
        self.canary.merge(other.canary)
        self.live_versions.merge(other.live_versions)
        self.pairs += other.pairs
        self.disagreements += other.disagreements
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "live": self.live.to_dict(),
            "canary": self.canary.to_dict(),
            "live_versions": self.live_versions.to_dict(),
            "pairs": self.pairs,
            "disagreements": self.disagreements,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Window:
        return cls(
            float(data["start"]),
            ClassCounts(data["live"]),
            ClassCounts(data["canary"]),
            ClassCounts(data["live_versions"]),
            int(data["pairs"]),
            int(data["disagreements"]),
        )


@dataclass
class Windows:
    """The most recent ``kept`` windows of ``length_s`` seconds; older ones are let go.

    An event for a window already let go is counted in ``late`` (it still counts in
    the comparison; only the dashboard window misses it).

    >>> windows = Windows(length_s=60, kept=2)
    >>> windows.at(61.0).live.update("invoice").total
    1
    >>> [w.start for w in windows.recent()]
    [60.0]
    """

    length_s: float
    kept: int
    by_start: dict[float, Window] = field(default_factory=dict)
    late: int = 0
    _current_start: float = -1.0
    _current: Window | None = None

    def at(self, ts: float) -> Window:
        """The window holding event time ``ts`` (hot path: the current window is cached)."""
        start = ts - ts % self.length_s
        if start == self._current_start and self._current is not None:
            return self._current
        window = self.by_start.get(start)
        if window is None:
            window = Window(start)
            if self.by_start and len(self.by_start) >= self.kept and start < min(self.by_start):
                # Older than everything kept: count it as late, hand back a scratch window.
                self.late += 1
                return window
            self.by_start[start] = window
            while len(self.by_start) > self.kept:
                del self.by_start[min(self.by_start)]
            if self._current_start not in self.by_start:
                self._current_start, self._current = -1.0, None
        if start >= self._current_start:
            self._current_start, self._current = start, window
        return window

    def recent(self) -> list[Window]:
        """The kept windows, oldest first."""
        return [self.by_start[start] for start in sorted(self.by_start)]

    def merge(self, other: Windows) -> Windows:
        for start, window in other.by_start.items():
            mine = self.by_start.get(start)
            if mine is None:
                self.by_start[start] = Window.from_dict(window.to_dict())
            else:
                mine.merge(window)
        while len(self.by_start) > self.kept:
            del self.by_start[min(self.by_start)]
        self.late += other.late
        self._current_start, self._current = -1.0, None
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "length_s": self.length_s,
            "kept": self.kept,
            "late": self.late,
            "windows": [w.to_dict() for w in self.recent()],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Windows:
        windows = cls(float(data["length_s"]), int(data["kept"]), late=int(data["late"]))
        for item in data["windows"]:
            window = Window.from_dict(item)
            windows.by_start[window.start] = window
        return windows
