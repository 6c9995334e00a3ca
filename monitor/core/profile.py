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

import orjson

from monitor.core.state.feature_intake import SampleRow
from monitor.core.state.features import FeatureLayout, FeatureStats

FORMAT = "driftgate-reference-profile/1"
DEFAULT_BINS = 100


class ProfileError(ValueError):
    """A profile file that cannot be read or is not a profile; the message says why."""


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
            "layout": self.layout.to_dict(),
            "features": self.features.to_dict(),
            "sample": [row.to_dict() for row in self.sample],
        }

    @classmethod
    def from_dict(cls, data: Any) -> ReferenceProfile:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ProfileError(f"not a driftgate reference profile (expected format {FORMAT!r})")
        try:
            layout = FeatureLayout.from_dict(data["layout"])
            return cls(
                deployment=str(data["deployment"]),
                rows=int(data["rows"]),
                class_counts={str(k): int(n) for k, n in data["class_counts"].items()},
                layout=layout,
                features=FeatureStats.from_dict(layout, data["features"]),
                source=str(data.get("source", "")),
                sample=[SampleRow.from_dict(row) for row in data.get("sample", [])],
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ProfileError(f"the profile is damaged: {error}") from None


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
