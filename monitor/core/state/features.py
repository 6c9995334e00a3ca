"""The inputs of one side of a comparison, per feature: histograms over fixed edges, category counts, quality.

A :class:`FeatureLayout` fixes, per column, its kind and what it is binned by:
numeric columns by bin edges (the reference's quantiles), categorical ones by the
reference's categories (others are counted as unseen, up to a cap of distinct
categories, beyond which they are pooled as ``__other__`` and counted). Columns named
``scores.<class>`` hold the model's score for that class.

A :class:`FeatureStats` is what one side (the reference, live or canary traffic of a
comparison) saw: per column counts that add up, so two states with the same layout
merge into the state of the union, and serialise to JSON-able data.

Updates take whole columns of a batch at once (numpy bins them in one call); nothing
here runs per event.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any, Literal

import msgspec
import numpy as np

from monitor.core.stats.drift import FloatArray, IntArray, Summary, exact_sum, quantile_edges

Kind = Literal["numeric", "categorical"]
SCORES_PREFIX = "scores."
OTHER = "__other__"
# A column whose values are at least this share numbers is numeric.
NUMERIC_SHARE = 0.95


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class ColumnSpec(msgspec.Struct, frozen=True, omit_defaults=True):
    """How one column is binned: numeric by ``edges`` (from min to max of the reference), else by categories."""

    name: str
    kind: Kind
    edges: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()
    max_categories: int = 100

    def __post_init__(self) -> None:
        # msgspec runs this on decode too: a stored or uploaded spec is checked like a new one
        edges = self.edges
        if self.kind == "numeric" and (
            not edges or any(not math.isfinite(e) for e in edges) or list(edges) != sorted(set(edges))
        ):
            raise ValueError(f"column {self.name!r}: edges must be finite, increasing and not empty")

    @property
    def edge_array(self) -> FloatArray:
        return np.asarray(self.edges, dtype=np.float64)


def infer_kind(values: Sequence[Any]) -> Kind | None:
    """numeric when nearly all present values are numbers, categorical otherwise, None when all are missing."""
    present = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not present:
        return None
    numbers = sum(1 for v in present if _is_number(v))
    return "numeric" if numbers >= NUMERIC_SHARE * len(present) else "categorical"


def learn_column(name: str, values: Sequence[Any], bins: int, max_new_categories: int) -> ColumnSpec | None:
    """The spec of a column learned from reference values (None when they are all missing)."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiu":
        # a numeric array (a reference file read by columns): no value-by-value look
        finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
        if finite.size == 0:
            return None
        return ColumnSpec(name, "numeric", edges=tuple(quantile_edges(finite, bins).tolist()))
    kind = infer_kind(values)
    if kind is None:
        return None
    if kind == "numeric":
        numbers = np.array([v for v in values if _is_number(v)], dtype=np.float64)
        return ColumnSpec(name, "numeric", edges=tuple(quantile_edges(numbers, bins).tolist()))
    categories = Counter(str(v) for v in values if v is not None)
    return ColumnSpec(name, "categorical", categories=tuple(sorted(categories)),
                      max_categories=len(categories) + max_new_categories)


class FeatureLayout(msgspec.Struct):
    """The columns tracked and how each is binned; shared by the reference and every window of traffic."""

    columns: dict[str, ColumnSpec]

    @classmethod
    def learn(
        cls, features: Sequence[dict[str, Any] | None], scores: Sequence[dict[str, Any] | None], bins: int,
        max_new_categories: int = 50, max_columns: int = 200, min_presence: float = 0.0,
    ) -> FeatureLayout:
        """A layout from reference rows: every feature and score class seen (at most ``max_columns``) in at
        least ``min_presence`` of the rows, so names that come and go (ids as keys) do not become columns."""
        columns: dict[str, list[Any]] = {}
        for prefix, rows in (("", features), (SCORES_PREFIX, scores)):
            seen = Counter(name for row in rows if row for name in row)
            for name in sorted(name for name, n in seen.items() if n >= min_presence * len(rows)):
                columns[prefix + name] = [row.get(name) if row else None for row in rows]
        return cls.learn_columns(columns, bins, max_new_categories, max_columns)

    @classmethod
    def learn_columns(
        cls, columns: Mapping[str, Sequence[Any]], bins: int, max_new_categories: int = 50, max_columns: int = 200
    ) -> FeatureLayout:
        """A layout from reference columns (name -> values); columns with no value at all are left out."""
        specs: dict[str, ColumnSpec] = {}
        for name, values in columns.items():
            if len(specs) >= max_columns:
                break
            spec = learn_column(name, values, bins, max_new_categories)
            if spec is not None:
                specs[name] = spec
        return cls(specs)


def _no_counts() -> IntArray:
    return np.zeros(0, dtype=np.int64)


class NumericColumn(msgspec.Struct, tag="numeric", dict=True):
    """Counts over the spec's right-closed bins, exact summaries, and the values that were not numbers.

    The spec is the layout's (``bind``, done by :class:`FeatureStats`), not stored with every column.
    """

    counts: IntArray = msgspec.field(default_factory=_no_counts)
    summary: Summary = msgspec.field(default_factory=Summary)
    type_changes: int = 0
    out_of_range: int = 0
    # exact sums (monitor.core.stats.drift.exact_sum units) of the values in the first and last bin: with them
    # the Wasserstein distance over the outer bins is exact where the other side has no value there
    first_bin_total: int = 0
    last_bin_total: int = 0

    def bind(self, spec: ColumnSpec) -> NumericColumn:
        """Take the column's spec (counts start at zero for it, or must fit it); returns self."""
        self.spec = spec
        self._edges = spec.edge_array
        if self.counts.size == 0:
            self.counts = np.zeros(self._edges.size + 1, dtype=np.int64)
        elif self.counts.size != self._edges.size + 1:
            raise ValueError(f"column {spec.name!r}: {self.counts.size} counts for {self._edges.size} edges")
        return self

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NumericColumn):
            return NotImplemented
        # numpy compares arrays element-wise; the fields are compared by hand for one answer
        return bool(np.array_equal(self.counts, other.counts)) and (
            self.summary, self.type_changes, self.out_of_range, self.first_bin_total, self.last_bin_total
        ) == (other.summary, other.type_changes, other.out_of_range, other.first_bin_total, other.last_bin_total)

    def update(self, values: Sequence[Any]) -> None:
        """Fold a batch of raw values in (None: missing; a value that is not a number: a type change)."""
        try:
            array = np.array(values, dtype=np.float64)
        except (TypeError, ValueError):
            array = self._numbers_only(values)
        finite = array[np.isfinite(array)]
        self.summary.missing += array.size - finite.size
        if finite.size == 0:
            return
        index = np.searchsorted(self._edges, finite, side="left")
        self.counts += np.bincount(index, minlength=self.counts.size)
        first, last = index == 0, index == self._edges.size
        if first.any():
            self.first_bin_total += exact_sum(finite[first])
            self.out_of_range += int(np.count_nonzero(first) - np.count_nonzero(finite == self._edges[0]))
        if last.any():
            self.last_bin_total += exact_sum(finite[last])
            self.out_of_range += int(np.count_nonzero(last))
        self.summary.update_many(finite)

    def _numbers_only(self, values: Sequence[Any]) -> FloatArray:
        """The slow path: values that are not numbers are type changes, left out of the rest."""
        numbers: list[float] = []
        for value in values:
            if value is None or _is_number(value) or isinstance(value, bool):
                numbers.append(math.nan if value is None else float(value))
            else:
                self.type_changes += 1
        return np.array(numbers, dtype=np.float64)

    @property
    def observed(self) -> int:
        return self.summary.count

    def merge(self, other: NumericColumn) -> None:
        self.counts += other.counts
        self.summary.merge(other.summary)
        self.type_changes += other.type_changes
        self.out_of_range += other.out_of_range
        self.first_bin_total += other.first_bin_total
        self.last_bin_total += other.last_bin_total

    def first_bin_at_edge(self) -> bool:
        """Whether every value in the first bin equals the first edge (so none lies below it)."""
        return self.first_bin_total == exact_sum(np.full(int(self.counts[0]), self._edges[0]))


class CategoricalColumn(msgspec.Struct, tag="categorical", dict=True):
    """Counts per category (distinct ones capped; the rest pooled and counted), unseen and missing values.

    The spec is the layout's (``bind``, done by :class:`FeatureStats`), not stored with every column.
    """

    counts: dict[str, int] = msgspec.field(default_factory=dict)
    missing: int = 0
    type_changes: int = 0
    unseen: int = 0
    # values pooled as __other__ because the cap of distinct categories was reached
    pooled: int = 0

    def bind(self, spec: ColumnSpec) -> CategoricalColumn:
        """Take the column's spec; returns self."""
        self.spec = spec
        self._known = frozenset(spec.categories)
        return self

    def update(self, values: Sequence[Any]) -> None:
        """Fold a batch of raw values in (None: missing; a number: a type change, counted by its text)."""
        counts = self.counts
        # Non-text values are counted with their type: 0, 0.0 and False are equal keys in a dict,
        # but each is counted by its own text ("0", "0.0", "False"), as the union of two batches is.
        tallies = Counter(value if value is None or value.__class__ is str else (value.__class__, value)
                          for value in values)
        for value, n in tallies.items():
            if value.__class__ is tuple:
                value = value[1]
            if value is None:
                self.missing += n
                continue
            if not isinstance(value, str):
                if not isinstance(value, (bool, int, float)):
                    self.type_changes += n
                    continue
                if not isinstance(value, bool):
                    self.type_changes += n
                value = str(value)
            if value not in self._known:
                self.unseen += n
            if value not in counts and len(counts) >= self.spec.max_categories:
                self.pooled += n
                value = OTHER
            counts[value] = counts.get(value, 0) + n

    @property
    def observed(self) -> int:
        return sum(self.counts.values())

    def merge(self, other: CategoricalColumn) -> None:
        for value, n in other.counts.items():
            if value not in self.counts and len(self.counts) >= self.spec.max_categories:
                self.pooled += n
                value = OTHER
            self.counts[value] = self.counts.get(value, 0) + n
        self.missing += other.missing
        self.type_changes += other.type_changes
        self.unseen += other.unseen
        self.pooled += other.pooled


Column = NumericColumn | CategoricalColumn


def new_column(spec: ColumnSpec) -> Column:
    """An empty column for ``spec``."""
    return NumericColumn().bind(spec) if spec.kind == "numeric" else CategoricalColumn().bind(spec)


class FeatureStats(msgspec.Struct, dict=True):
    """Every column of one side of a comparison, over a shared layout.

    >>> layout = FeatureLayout.learn([{"x": 1.0}, {"x": 3.0}], [None, None], bins=2)
    >>> stats = FeatureStats(layout)
    >>> stats.update([{"x": 2.0}, None], [None, None])
    >>> (stats.rows, stats.columns["x"].counts.tolist(), stats.columns["x"].summary.missing)
    (2, [0, 1, 0, 0], 1)
    """

    layout: FeatureLayout
    rows: int = 0
    columns: dict[str, Column] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        # Every column of the layout, in its order, bound to its spec (the stored columns carry none);
        # a stored column the layout no longer has is let go.
        stored = self.columns
        self.columns = {
            name: stored[name].bind(spec) if name in stored else new_column(spec)
            for name, spec in self.layout.columns.items()
        }
        self._feature_names = [name for name in self.columns if not name.startswith(SCORES_PREFIX)]
        self._score_names = [name for name in self.columns if name.startswith(SCORES_PREFIX)]
        self._score_keys = [name[len(SCORES_PREFIX):] for name in self._score_names]

    def update(self, features: Sequence[dict[str, Any] | None], scores: Sequence[dict[str, Any] | None]) -> None:
        """Fold a batch of rows in: ``features[i]`` and ``scores[i]`` belong to the same event."""
        self.rows += len(features)
        for rows, names, keys in (
            (features, self._feature_names, self._feature_names),
            (scores, self._score_names, self._score_keys),
        ):
            if not names:
                continue
            for name, values in zip(names, _columns_of(rows, keys), strict=True):
                self.columns[name].update(values)

    def update_columns(self, rows: int, values: dict[str, list[Any]]) -> None:
        """Fold whole columns in (a reference file read column by column); absent columns are missing."""
        self.rows += rows
        for name, column in self.columns.items():
            column.update(values.get(name, [None] * rows))

    def merge(self, other: FeatureStats) -> FeatureStats:
        self.rows += other.rows
        for name, column in other.columns.items():
            mine = self.columns.get(name)
            if mine is not None:
                mine.merge(column)  # type: ignore[arg-type]
        return self


def _columns_of(rows: Sequence[dict[str, Any] | None], keys: list[str]) -> list[Sequence[Any]]:
    """The values of ``keys`` in each row, as one list per key (None where a row lacks one).

    Speed matters (once per batch for every event): when every row has every key, one
    C-level itemgetter per row and a transposition do it; otherwise a get per value.
    """
    if not rows:
        return [[] for _ in keys]
    if len(keys) > 1:
        getter = itemgetter(*keys)
        try:
            return list(zip(*map(getter, rows), strict=True))  # type: ignore[arg-type]
        except (KeyError, TypeError):
            pass
    return [[row.get(key) if row is not None else None for row in rows] for key in keys]
