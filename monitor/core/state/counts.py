"""Class counts: the additive building block of all state."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence


class ClassCounts:
    """Counts per class that merge by addition.

    >>> a = ClassCounts().update("invoice").update("other")
    >>> b = ClassCounts({"invoice": 2})
    >>> a.merge(b).to_dict()
    {'invoice': 3, 'other': 1}
    >>> a.vector(["invoice", "contract", "other"])
    [3, 0, 1]
    """

    __slots__ = ("counts",)

    def __init__(self, counts: Mapping[str, int] | None = None) -> None:
        self.counts: dict[str, int] = dict(counts) if counts else {}

    def update(self, label: str, n: int = 1) -> ClassCounts:
        """Add ``n`` observations of ``label``; returns self."""
        self.counts[label] = self.counts.get(label, 0) + n
        return self

    def update_many(self, labels: Iterable[str]) -> ClassCounts:
        """Add one observation per label; returns self."""
        counts = self.counts
        for label in labels:
            counts[label] = counts.get(label, 0) + 1
        return self

    def merge(self, other: ClassCounts) -> ClassCounts:
        """Add another's counts into this one; returns self."""
        counts = self.counts
        for label, n in other.counts.items():
            counts[label] = counts.get(label, 0) + n
        return self

    def __add__(self, other: ClassCounts) -> ClassCounts:
        return ClassCounts(self.counts).merge(other)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ClassCounts):
            return NotImplemented
        return {k: v for k, v in self.counts.items() if v} == {k: v for k, v in other.counts.items() if v}

    def __repr__(self) -> str:
        return f"ClassCounts({self.counts!r})"

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def get(self, label: str) -> int:
        return self.counts.get(label, 0)

    def vector(self, classes: Sequence[str]) -> list[int]:
        """The counts in the order of ``classes`` (0 for a class never seen)."""
        return [self.counts.get(label, 0) for label in classes]

    def to_dict(self) -> dict[str, int]:
        """The counts as a plain dict (a copy); the state codec stores them in this form."""
        return dict(self.counts)
