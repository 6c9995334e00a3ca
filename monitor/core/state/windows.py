"""Tumbling event-time windows of class counts, for dashboards and sinks."""

from __future__ import annotations

import msgspec

from monitor.core.state.codec import clone
from monitor.core.state.counts import ClassCounts


class Window(msgspec.Struct):
    """Counts of one tumbling window, [start, start + length) in event time."""

    start: float
    live: ClassCounts = msgspec.field(default_factory=ClassCounts)
    canary: ClassCounts = msgspec.field(default_factory=ClassCounts)
    live_versions: ClassCounts = msgspec.field(default_factory=ClassCounts)
    pairs: int = 0
    disagreements: int = 0

    def merge(self, other: Window) -> Window:
        self.live.merge(other.live)
        self.canary.merge(other.canary)
        self.live_versions.merge(other.live_versions)
        self.pairs += other.pairs
        self.disagreements += other.disagreements
        return self


class Windows(msgspec.Struct, dict=True):
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
    by_start: dict[float, Window] = msgspec.field(default_factory=dict)
    late: int = 0

    def __post_init__(self) -> None:
        # the window of the latest event time, cached for the hot path (not state: rebuilt on demand)
        self._current_start = -1.0
        self._current: Window | None = None

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
                self.by_start[start] = clone(window)
            else:
                mine.merge(window)
        while len(self.by_start) > self.kept:
            del self.by_start[min(self.by_start)]
        self.late += other.late
        self._current_start, self._current = -1.0, None
        return self
