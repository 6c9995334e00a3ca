"""Where the features and scores of predictions wait for their batch, and how the layout is found.

Hot path: per prediction, :meth:`FeatureIntake.hold` appends one tuple to a list;
once per batch :meth:`FeatureIntake.flush` bins every column of the batch with numpy.

The layout comes from the reference profile when there is one. Without one the
canary is compared with live: the layout is learned from the first ``learn_from``
live rows (numeric edges at their quantiles, categories seen), and the rows that
arrive until then are held (at most ``4 * learn_from``; more are counted in
``unbinned``) and binned once the layout is known.

A bounded sample of the most recent rows per role (``sample_rows``) is kept for
reports.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from monitor.state.features import FeatureLayout, FeatureStats

# (role, comparison key or None, features, scores, label)
Row = tuple[str, str | None, dict[str, Any] | None, dict[str, float] | None, str]
Resolver = Callable[[str, str | None], FeatureStats | None]


@dataclass(frozen=True)
class IntakeSettings:
    """How a layout is learned without a profile, and how much is kept for reports."""

    bins: int = 100
    learn_from: int = 1000
    max_new_categories: int = 50
    sample_rows: int = 2000


class FeatureIntake:
    """Per-batch buffers of features and scores, the layout, and a sample of recent rows."""

    def __init__(self, settings: IntakeSettings | None = None, layout: FeatureLayout | None = None) -> None:
        self.settings = settings or IntakeSettings()
        self.layout = layout
        self.from_profile = layout is not None
        self.pending: list[Row] = []
        self.held: list[Row] = []
        self.unbinned = 0
        self.recent: dict[str, deque[Row]] = {
            role: deque(maxlen=self.settings.sample_rows) for role in ("live", "canary")
        }

    def flush(self, resolve: Resolver) -> None:
        """Bin the rows of the batch into the feature state each belongs to (``resolve(role, key)``)."""
        if not self.pending:
            return
        # The list object stays: the hot path holds its bound append.
        rows = self.pending.copy()
        self.pending.clear()
        for role in ("live", "canary"):
            self.recent[role].extend(row for row in rows if row[0] == role)
        if self.layout is None:
            rows = self._hold(rows)
            if self.layout is None:
                return
        groups: dict[tuple[str, str | None], list[Row]] = {}
        for row in rows:
            groups.setdefault((row[0], row[1]), []).append(row)
        for (role, key), group in groups.items():
            target = resolve(role, key)
            if target is not None:
                target.update([row[2] for row in group], [row[3] for row in group])

    def _hold(self, rows: list[Row]) -> list[Row]:
        """Keep rows until enough live rows are here to learn the layout; then give all of them back."""
        room = 4 * self.settings.learn_from - len(self.held)
        self.held.extend(rows[:max(room, 0)])
        self.unbinned += max(len(rows) - max(room, 0), 0)
        live = [row for row in self.held if row[0] == "live"]
        if len(live) < self.settings.learn_from:
            return []
        # Exactly the first learn_from live rows, whatever the batches: a replay learns the same edges.
        live = live[: self.settings.learn_from]
        self.layout = FeatureLayout.learn(
            [row[2] for row in live], [row[3] for row in live], self.settings.bins, self.settings.max_new_categories
        )
        held, self.held = self.held, []
        return held

    def sample(self, role: str) -> list[Row]:
        """The most recent rows of a role, oldest first."""
        return list(self.recent[role])

    def merge(self, other: FeatureIntake) -> FeatureIntake:
        if self.layout is None and other.layout is not None:
            self.layout = other.layout
        self.held.extend(other.held)
        self.unbinned += other.unbinned
        for role, rows in other.recent.items():
            self.recent[role].extend(rows)
        return self

    def to_dict(self) -> dict[str, Any]:
        def rows(items: Any) -> list[list[Any]]:
            return [list(row) for row in items]

        return {
            "layout": self.layout.to_dict() if self.layout is not None else None,
            "from_profile": self.from_profile,
            "pending": rows(self.pending),
            "held": rows(self.held),
            "unbinned": self.unbinned,
            "recent": {role: rows(items) for role, items in self.recent.items()},
        }

    def load(self, data: dict[str, Any]) -> None:
        """Take over a checkpoint's intake (a layout from the profile is kept as configured)."""
        if not self.from_profile and data.get("layout") is not None:
            self.layout = FeatureLayout.from_dict(data["layout"])
        self.pending.extend(tuple(row) for row in data.get("pending", []))
        self.held = [tuple(row) for row in data.get("held", [])]
        self.unbinned = int(data.get("unbinned", 0))
        for role, items in data.get("recent", {}).items():
            self.recent[role].extend(tuple(row) for row in items)
