"""Tests of monitor.core.state.counts: oracle (collections.Counter) and merge laws."""

from __future__ import annotations

import doctest
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

import monitor.core.state.counts
from monitor.core.state.codec import clone, decode, encode
from monitor.core.state.counts import ClassCounts

labels = st.lists(st.sampled_from(["invoice", "contract", "other", "x", ""]), max_size=60)


def test_doctests() -> None:
    assert doctest.testmod(monitor.core.state.counts).failed == 0


@given(labels)
def test_update_and_update_many_match_counter(stream: list[str]) -> None:
    one_by_one = ClassCounts()
    for label in stream:
        assert one_by_one.update(label) is one_by_one
    batched = ClassCounts()
    assert batched.update_many(stream) is batched
    oracle = Counter(stream)
    assert one_by_one.to_dict() == dict(oracle)
    assert batched.to_dict() == dict(oracle)
    assert one_by_one.total == len(stream)
    assert all(one_by_one.get(label) == n for label, n in oracle.items())
    assert one_by_one.get("never seen") == 0


@given(labels, st.integers(min_value=0, max_value=60))
def test_merge_of_two_halves_equals_the_whole(stream: list[str], cut: int) -> None:
    first, second = stream[:cut], stream[cut:]
    whole = ClassCounts().update_many(stream)
    merged = ClassCounts().update_many(first)
    other = ClassCounts().update_many(second)
    assert merged.merge(other) is merged
    assert merged == whole
    assert merged.to_dict() == whole.to_dict()
    assert other == ClassCounts().update_many(second)  # the argument is left alone


@given(labels, labels)
def test_add_is_commutative_and_leaves_operands_alone(a: list[str], b: list[str]) -> None:
    left, right = ClassCounts().update_many(a), ClassCounts().update_many(b)
    assert left + right == right + left == ClassCounts(Counter(a) + Counter(b))
    assert left.to_dict() == dict(Counter(a))
    assert right.to_dict() == dict(Counter(b))


@given(labels, labels, labels)
def test_merge_is_associative(a: list[str], b: list[str], c: list[str]) -> None:
    x, y, z = (ClassCounts().update_many(s) for s in (a, b, c))
    assert (x + y) + z == x + (y + z)


def test_update_with_a_weight() -> None:
    counts = ClassCounts().update("invoice", 3).update("invoice", 2).update("other")
    assert counts.to_dict() == {"invoice": 5, "other": 1}
    assert counts.total == 6


def test_vector_follows_the_given_class_order() -> None:
    counts = ClassCounts({"b": 2, "a": 1})
    assert counts.vector(["a", "b", "c"]) == [1, 2, 0]
    assert counts.vector([]) == []


def test_equality_ignores_zero_counts_and_other_types() -> None:
    assert ClassCounts({"a": 1, "b": 0}) == ClassCounts({"a": 1})
    assert ClassCounts({"a": 1}) != ClassCounts({"a": 2})
    assert ClassCounts() != {"a": 1}


def test_round_trip_and_independent_copy() -> None:
    source = {"a": 3, "b": 1}
    counts = decode(source, ClassCounts)
    counts.update("a")
    assert source == {"a": 3, "b": 1}
    assert encode(counts) == {"a": 4, "b": 1}
    assert decode(encode(counts), ClassCounts) == counts
    copy = clone(counts)
    copy.update("b")
    assert copy != counts and counts.get("b") == 1
