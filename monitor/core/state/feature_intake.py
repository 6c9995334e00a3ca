"""Where the features and scores of predictions wait for their batch, and how the layout is found.

Hot path: per prediction, :meth:`FeatureIntake.hold` appends one tuple to a list;
once per batch :meth:`FeatureIntake.flush` bins every column of the batch with numpy.

The layout comes from the reference profile when there is one. Without one the
canary is compared with live: the layout is learned from the first ``learn_from``
live rows (numeric edges at their quantiles, categories seen), and the rows that
arrive until then are held (at most ``2 * learn_from`` per role; more are counted in
``unbinned``) and binned once the layout is known.

A bounded sample of the most recent rows per role (``sample_rows``) is kept for
reports; it is not state (it refills as traffic comes), so it is neither stored nor copied.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from monitor.core.state.features import FeatureLayout, FeatureStats

# Learned from live rows, a column must be present in this share of them.
MIN_PRESENCE = 0.05
# (role, comparison key or None, features, scores, label, request id, event time)
Row = tuple[str, str | None, dict[str, Any] | None, dict[str, float] | None, str, str, float]
Resolver = Callable[[str, str | None], FeatureStats | None]
# live rows that came with no comparison to count in: (features, scores, event times)
Unkeyed = Callable[[Sequence[dict[str, Any] | None], Sequence[dict[str, Any] | None], Sequence[float]], None]


class SampleRow(msgspec.Struct, frozen=True):
    """One prediction as the report sees it: its answer, the truth if known, features and scores."""

    prediction: str
    target: str | None = None
    features: dict[str, Any] | None = None
    scores: dict[str, Any] | None = None


class IntakeSettings(msgspec.Struct, frozen=True):
    """How a layout is learned without a profile, and how much is kept for reports."""

    bins: int = 100
    # the features of one prediction in this many per role are binned (1: all); see DriftSettings
    sample_every: int = 8
    # rows waiting before they are binned: numpy's fixed cost per call is paid once per this many
    flush_rows: int = 4096
    learn_from: int = 500
    max_new_categories: int = 50
    sample_rows: int = 2000


def _by_role() -> dict[str, list[Row]]:
    return {"live": [], "canary": []}


class FeatureIntake(msgspec.Struct, dict=True):
    """Per-batch buffers of features and scores, the layout, and a sample of recent rows."""

    settings: IntakeSettings = msgspec.field(default_factory=IntakeSettings)
    layout: FeatureLayout | None = None
    # whether the layout is the reference profile's (None: say so when a layout is given)
    from_profile: bool | None = None
    # role -> rows of this batch; the lists stay (the hot path holds their bound append)
    pending: dict[str, list[Row]] = msgspec.field(default_factory=_by_role)
    # role -> rows waiting for the layout to be learned
    held: dict[str, list[Row]] = msgspec.field(default_factory=_by_role)
    unbinned: int = 0

    def __post_init__(self) -> None:
        if self.from_profile is None:
            self.from_profile = self.layout is not None
        # The report sample is not state: it refills within moments of traffic, and rows with many
        # features would make every checkpoint large.
        self.recent: dict[str, deque[Row]] = {
            role: deque(maxlen=self.settings.sample_rows) for role in ("live", "canary")
        }
        # request id -> true class from feedback, for the recent rows (bounded; oldest let go first)
        self.truths: dict[str, str] = {}

    def flush(self, resolve: Resolver, unkeyed: Unkeyed) -> None:
        """Bin the rows of the batch into the feature state each belongs to (``resolve(role, key)``);
        live rows that came before any comparison go to ``unkeyed``, to be placed by their event time."""
        batches = []
        for role, pending in self.pending.items():
            if pending:
                batches.append(pending.copy())
                pending.clear()
                if self.settings.sample_rows:
                    # A few rows of each chunk: the sample spans several chunks and churns less memory.
                    self.recent[role].extend(batches[-1][-max(1, self.settings.sample_rows // 8):])
        if not batches:
            return
        if self.layout is None:
            batches = self._hold(batches)
        for rows in batches:
            role = rows[0][0]
            # transposed in C: one tuple of keys, features and scores each
            _, keys, features, scores, _, _, times = zip(*rows, strict=True)
            distinct = set(keys)
            if role == "live" and None in distinct:
                where = [i for i, k in enumerate(keys) if k is None]
                unkeyed([features[i] for i in where], [scores[i] for i in where], [times[i] for i in where])
                distinct.discard(None)
                if not distinct:
                    continue
            if len(distinct) == 1 and len(keys) == len(rows) and None not in keys:
                target = resolve(role, keys[0])
                if target is not None:
                    target.update(features, scores)
                continue
            for key in distinct:
                target = resolve(role, key)
                if target is not None:
                    where = [i for i, k in enumerate(keys) if k == key]
                    target.update([features[i] for i in where], [scores[i] for i in where])

    def _hold(self, batches: list[list[Row]]) -> list[list[Row]]:
        """Keep rows until enough live rows are here to learn the layout; then give all of them back."""
        by_role = {role: list(rows) for role, rows in self.held.items()}
        for rows in batches:
            by_role[rows[0][0]].extend(rows)
        live = by_role["live"]
        if len(live) >= self.settings.learn_from:
            # Exactly the first learn_from live rows, whatever the batches: a replay learns the same edges.
            first = live[: self.settings.learn_from]
            self.layout = FeatureLayout.learn(
                [row[2] for row in first], [row[3] for row in first], self.settings.bins,
                self.settings.max_new_categories, min_presence=MIN_PRESENCE,
            )
            self.held = {"live": [], "canary": []}
            return [rows for rows in by_role.values() if rows]
        cap = 2 * self.settings.learn_from
        for role, rows in by_role.items():
            self.unbinned += max(len(rows) - cap, 0)
            self.held[role] = rows[:cap]
        return []

    @property
    def waiting(self) -> int:
        """Rows not binned yet."""
        return len(self.pending["live"]) + len(self.pending["canary"])

    @property
    def held_rows(self) -> int:
        return sum(len(rows) for rows in self.held.values())

    def note_truth(self, request_id: str, label: str) -> None:
        """Remember the true class of a request, for the report sample."""
        truths = self.truths
        truths[request_id] = label
        if len(truths) > 4 * self.settings.sample_rows:
            del truths[next(iter(truths))]

    def sample(self, role: str) -> list[SampleRow]:
        """The most recent rows of a role, oldest first, with the true class where feedback told it."""
        truths = self.truths
        return [SampleRow(row[4], truths.get(row[5]), row[2], row[3]) for row in self.recent[role]]

    def merge(self, other: FeatureIntake) -> FeatureIntake:
        if self.layout is None and other.layout is not None:
            self.layout = other.layout
        for role, waiting in other.held.items():
            self.held[role].extend(waiting)
        self.unbinned += other.unbinned
        for role, recent in other.recent.items():
            self.recent[role].extend(recent)
        return self

    def take_over(self, old: FeatureIntake) -> None:
        """Carry on from the intake this one replaces: its waiting rows, figures and learned layout
        (a layout from the profile is kept as configured)."""
        if not self.from_profile and old.layout is not None:
            self.layout = old.layout
        for role, rows in old.pending.items():
            self.pending[role].extend(rows)
        for role, rows in old.held.items():
            self.held[role] = list(rows)
        self.unbinned = old.unbinned
