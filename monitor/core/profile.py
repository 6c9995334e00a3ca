"""The reference profile of a deployment: what later traffic is compared with.

It holds the class distribution of the reference (test) set, and per feature and per
score class what a later window needs to be compared with it: numeric columns as
counts over bin edges at the reference's quantiles with exact summaries (count,
missing, min, max, mean, M2), categorical ones as category counts with room for
categories the reference never had. It is plain JSON (:func:`encode_profile`), written by
``driftgate reference build`` and named by ``reference.profile`` in the config.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from monitor.core.state import codec
from monitor.core.state.feature_intake import SampleRow
from monitor.core.state.features import (
    CategoricalColumn,
    Column,
    ColumnSpec,
    FeatureLayout,
    FeatureStats,
    NumericColumn,
)
from monitor.core.stats.drift import Summary
from monitor.errors import ProfileError

FORMAT = "driftgate-reference-profile/1"
DEFAULT_BINS = 100


@dataclass
class ReferenceProfile:
    """Class counts, the feature layout and the reference's feature state."""

    deployment: str
    rows: int
    class_counts: dict[str, int]
    layout: FeatureLayout
    features: FeatureStats
    source: str = ""
    # evenly spaced rows of the reference data, for Evidently reports
    sample: list[SampleRow] = field(default_factory=list)

    def class_distribution(self) -> dict[str, float]:
        total = sum(self.class_counts.values())
        return {label: n / total for label, n in self.class_counts.items()} if total else {}

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "deployment": self.deployment,
            "rows": self.rows,
            "source": self.source,
            "class_counts": dict(self.class_counts),
            "layout": {"columns": [_spec_document(spec) for spec in self.layout.columns.values()]},
            "features": _features_document(self.features),
            "sample": codec.encode(self.sample),
        }

    @classmethod
    def from_dict(cls, data: Any) -> ReferenceProfile:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ProfileError(f"not a driftgate reference profile (expected format {FORMAT!r})")
        try:
            specs = codec.decode(data["layout"]["columns"], list[ColumnSpec])
            layout = FeatureLayout({spec.name: spec for spec in specs})
            return cls(
                deployment=str(data["deployment"]),
                rows=int(data["rows"]),
                class_counts={str(k): int(n) for k, n in data["class_counts"].items()},
                layout=layout,
                features=_features_from_document(layout, data["features"]),
                source=str(data.get("source", "")),
                sample=codec.decode(data.get("sample", []), list[SampleRow]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ProfileError(f"the profile is damaged: {error}") from None


# The profile document is a published form (files, the reference-profile route), older than the
# state codec and kept as it was: exact sums as text, a summary with its mean and M2, no column tags.


def _spec_document(spec: ColumnSpec) -> dict[str, Any]:
    document: dict[str, Any] = codec.encode(spec)
    if spec.kind == "categorical":
        document["max_categories"] = spec.max_categories  # always written, even at its default
    return document


def _features_document(stats: FeatureStats) -> dict[str, Any]:
    columns: dict[str, Any] = {}
    for name, column in stats.columns.items():
        if isinstance(column, NumericColumn):
            summary = column.summary
            columns[name] = {
                "counts": column.counts.tolist(),
                "summary": {"count": summary.count, "missing": summary.missing, "min": summary.low,
                            "max": summary.high, "mean": summary.mean, "m2": summary.m2, "total": str(summary.total),
                            "total_squares": str(summary.total_squares), "overflowed": summary.overflowed},
                "type_changes": column.type_changes, "out_of_range": column.out_of_range,
                "first_bin_total": str(column.first_bin_total), "last_bin_total": str(column.last_bin_total),
            }
        else:
            columns[name] = {"counts": dict(column.counts), "missing": column.missing,
                             "type_changes": column.type_changes, "unseen": column.unseen, "pooled": column.pooled}
    return {"rows": stats.rows, "columns": columns}


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _features_from_document(layout: FeatureLayout, data: dict[str, Any]) -> FeatureStats:
    columns: dict[str, Column] = {}
    for name, item in data["columns"].items():
        spec = layout.columns.get(name)
        if spec is None:
            continue
        if spec.kind == "numeric":
            summary = item["summary"]
            columns[name] = NumericColumn(
                np.array(item["counts"], dtype=np.int64),
                Summary(
                    int(summary["count"]), int(summary["missing"]), _number(summary["min"]), _number(summary["max"]),
                    int(summary["total"]), int(summary["total_squares"]), int(summary.get("overflowed", 0)),
                ),
                int(item["type_changes"]), int(item["out_of_range"]),
                int(item.get("first_bin_total", 0)), int(item.get("last_bin_total", 0)),
            )
        else:
            columns[name] = codec.decode(item, CategoricalColumn)
    return FeatureStats(layout, int(data["rows"]), columns)


def build_profile(
    deployment: str,
    labels: Sequence[str | None],
    columns: dict[str, list[Any]],
    bins: int = DEFAULT_BINS,
    max_new_categories: int = 50,
    source: str = "",
    sample: list[SampleRow] | None = None,
) -> ReferenceProfile:
    """A profile from reference columns: ``labels`` per row and ``columns`` (feature or ``scores.<class>``)."""
    rows = len(labels)
    layout = FeatureLayout.learn_columns(columns, bins, max_new_categories)
    features = FeatureStats(layout)
    features.update_columns(rows, columns)
    class_counts = Counter(label for label in labels if label is not None)
    return ReferenceProfile(
        deployment, rows, dict(sorted(class_counts.items())), layout, features, source, list(sample or [])
    )


def decode_profile(data: bytes, origin: str) -> ReferenceProfile:
    """A profile from its JSON; ProfileError names ``origin`` (a file, a request) and what is wrong."""
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise ProfileError(f"{origin} is not JSON: {error}") from None
    return ReferenceProfile.from_dict(document)


def encode_profile(profile: ReferenceProfile) -> bytes:
    """A profile as indented JSON."""
    return orjson.dumps(profile.to_dict(), option=orjson.OPT_INDENT_2)
