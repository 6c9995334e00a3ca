"""Tests of monitor.core.state.join: the request join against a batch oracle, its bounds and its accounting."""

from __future__ import annotations

import doctest
from collections import Counter
from dataclasses import dataclass

from hypothesis import example, given, settings
from hypothesis import strategies as st

import monitor.core.state.join
from monitor.core.state.codec import decode, encode
from monitor.core.state.join import RequestJoin

LABELS = ("invoice", "contract", "other")
BIG = 10_000


@dataclass(frozen=True)
class Event:
    request_id: str
    role: str  # live | canary
    label: str
    ts: float


@dataclass(frozen=True)
class Request:
    request_id: str
    live: str | None
    canary: str | None


@st.composite
def request_sets(draw: st.DrawFn) -> list[Request]:
    """Distinct requests, each answered by live, canary or both."""
    n = draw(st.integers(min_value=0, max_value=25))
    requests = []
    for i in range(n):
        sides = draw(st.sampled_from(["live", "canary", "both"]))
        live = draw(st.sampled_from(LABELS)) if sides != "canary" else None
        canary = draw(st.sampled_from(LABELS)) if sides != "live" else None
        requests.append(Request(f"r{i}", live, canary))
    return requests


def events_of(requests: list[Request]) -> list[Event]:
    events = []
    for request in requests:
        if request.live is not None:
            events.append(Event(request.request_id, "live", request.live, 0.0))
        if request.canary is not None:
            events.append(Event(request.request_id, "canary", request.canary, 0.0))
    return events


@st.composite
def interleavings(draw: st.DrawFn, duplicates: bool) -> tuple[list[Request], list[Event]]:
    """A set of requests and one arrival order of their events (with re-deliveries if asked)."""
    requests = draw(request_sets())
    events = events_of(requests)
    if duplicates and events:
        events += draw(st.lists(st.sampled_from(events), max_size=10))
    order = draw(st.permutations(events))
    return requests, [Event(e.request_id, e.role, e.label, float(i)) for i, e in enumerate(order)]


def feed(join: RequestJoin, events: list[Event]) -> Counter[tuple[str, str]]:
    """Feed events in order; returns the confusion of the pairs the join completed."""
    confusion: Counter[tuple[str, str]] = Counter()
    for event in events:
        if event.role == "live":
            pair = join.add_live(event.request_id, event.label, event.ts)
        else:
            pair = join.add_canary(event.request_id, event.label, "v2", event.ts)
        if pair is not None:
            assert pair.live_label is not None and pair.canary_label is not None
            assert pair.canary_version == "v2"
            confusion[(pair.live_label, pair.canary_label)] += 1
    return confusion


def batch_confusion(requests: list[Request]) -> Counter[tuple[str, str]]:
    return Counter((r.live, r.canary) for r in requests if r.live is not None and r.canary is not None)


def test_doctests() -> None:
    assert doctest.testmod(monitor.core.state.join).failed == 0


@given(interleavings(duplicates=False))
def test_any_interleaving_pairs_like_the_batch(case: tuple[list[Request], list[Event]]) -> None:
    requests, events = case
    join = RequestJoin(max_open=BIG, ttl_s=1e9)
    confusion = feed(join, events)
    expected = batch_confusion(requests)
    assert confusion == expected
    assert join.stats.paired == sum(expected.values())
    one_sided = {r.request_id for r in requests if r.live is None or r.canary is None}
    assert set(join.open) == one_sided
    # Every distinct request is accounted for exactly once.
    stats = join.stats
    assert stats.paired + stats.evicted + stats.expired_live_only + stats.expired_canary_only + len(join) == len(
        requests
    )
    assert stats.duplicates == stats.evicted == 0


@given(interleavings(duplicates=True))
def test_redelivery_before_pairing_is_a_duplicate(case: tuple[list[Request], list[Event]]) -> None:
    """Re-deliveries that arrive while the request is open are counted, never paired twice."""
    requests, events = case
    first_seen: dict[tuple[str, str], int] = {}
    for i, event in enumerate(events):
        first_seen.setdefault((event.request_id, event.role), i)
    # Keep only re-deliveries that come before the request's other half completes it.
    completed_at = {
        r.request_id: max(first_seen[(r.request_id, "live")], first_seen[(r.request_id, "canary")])
        for r in requests
        if r.live is not None and r.canary is not None
    }
    kept = [
        e for i, e in enumerate(events)
        if first_seen[(e.request_id, e.role)] == i or i < completed_at.get(e.request_id, len(events))
    ]
    join = RequestJoin(max_open=BIG, ttl_s=1e9)
    assert feed(join, kept) == batch_confusion(requests)
    assert join.stats.duplicates == len(kept) - len(events_of(requests))


@example(
    (
        [Request("r0", "invoice", "other")],
        [Event("r0", "live", "invoice", 0.0), Event("r0", "canary", "other", 1.0),
         Event("r0", "live", "invoice", 2.0), Event("r0", "canary", "other", 3.0)],
    )
)
@settings(max_examples=50)
@given(interleavings(duplicates=True))
def test_any_interleaving_with_redeliveries_pairs_like_the_batch(
    case: tuple[list[Request], list[Event]],
) -> None:
    requests, events = case
    join = RequestJoin(max_open=BIG, ttl_s=1e9)
    assert feed(join, events) == batch_confusion(requests)


@given(
    interleavings(duplicates=True),
    st.integers(min_value=1, max_value=6),
    st.floats(min_value=0.5, max_value=20),
    st.sets(st.integers(min_value=0, max_value=60), max_size=8),
)
def test_bounded_memory_and_every_arrival_accounted_for(
    case: tuple[list[Request], list[Event]], max_open: int, ttl_s: float, expire_after: set[int]
) -> None:
    requests, events = case
    join = RequestJoin(max_open=max_open, ttl_s=ttl_s)
    for i, event in enumerate(events):
        feed(join, [event])
        assert len(join) <= max_open
        if i in expire_after:
            join.expire(event.ts)
            assert all(entry.ts >= event.ts - ttl_s for entry in join.open.values())
    stats = join.stats
    left_unpaired = stats.evicted + stats.expired_live_only + stats.expired_canary_only + len(join)
    # Each arrival opens a request, completes one, or is a duplicate; each opened request leaves exactly once.
    assert len(events) == 2 * stats.paired + left_unpaired + stats.duplicates
    # So every distinct request is somewhere (one may be counted twice if evicted and then re-opened).
    assert stats.paired + left_unpaired >= len(requests)


def test_oldest_request_is_evicted_first() -> None:
    join = RequestJoin(max_open=2, ttl_s=60)
    join.add_live("r1", "invoice", 0.0)
    join.add_live("r2", "invoice", 1.0)
    join.add_canary("r3", "other", "v2", 2.0)
    assert list(join.open) == ["r2", "r3"]
    assert join.stats.evicted == 1
    # r1's other half finds nothing to pair with: it opens again.
    assert join.add_canary("r1", "invoice", "v2", 3.0) is None
    assert list(join.open) == ["r3", "r1"]
    assert join.stats.evicted == 2
    assert join.stats.paired == 0


def test_ttl_expiry_by_event_time() -> None:
    join = RequestJoin(max_open=10, ttl_s=10)
    join.add_live("r1", "invoice", 0.0)
    join.add_canary("r2", "other", "v2", 5.0)
    join.add_live("r3", "other", 12.0)
    assert join.expire(12.0) == 1  # horizon 2: r1 (ts 0) goes
    assert list(join.open) == ["r2", "r3"]
    assert (join.stats.expired_live_only, join.stats.expired_canary_only) == (1, 0)
    assert join.expire(15.0) == 0  # horizon 5: r2 at exactly 5 stays
    assert join.expire(15.5) == 1  # horizon 5.5: r2 goes
    assert (join.stats.expired_live_only, join.stats.expired_canary_only) == (1, 1)
    assert list(join.open) == ["r3"]
    # An expired request's other half no longer pairs.
    assert join.add_canary("r1", "invoice", "v2", 16.0) is None
    assert join.stats.paired == 0


def test_duplicate_while_open_is_counted_and_first_answer_kept() -> None:
    join = RequestJoin(max_open=10, ttl_s=60)
    join.add_live("r1", "invoice", 0.0)
    assert join.add_live("r1", "other", 1.0) is None
    assert join.stats.duplicates == 1
    pair = join.add_canary("r1", "contract", "v9", 2.0)
    assert pair is not None
    assert (pair.live_label, pair.canary_label, pair.canary_version, pair.ts) == ("invoice", "contract", "v9", 0.0)
    assert len(join) == 0


@given(interleavings(duplicates=True), st.integers(min_value=1, max_value=8))
def test_round_trip(case: tuple[list[Request], list[Event]], max_open: int) -> None:
    _, events = case
    half = len(events) // 2
    join = RequestJoin(max_open=max_open, ttl_s=5.0)
    feed(join, events[:half])
    join.expire(float(half))
    restored = decode(encode(join), RequestJoin)
    assert restored == join
    # It behaves the same from here on.
    assert feed(restored, events[half:]) == feed(join, events[half:])
    assert restored == join


def test_stats_merge_adds_up() -> None:
    a = RequestJoin(max_open=1, ttl_s=1)
    a.add_live("r1", "x", 0.0)
    a.add_live("r2", "x", 0.0)  # evicts r1
    b = RequestJoin(max_open=5, ttl_s=1)
    b.add_live("r3", "x", 0.0)
    b.add_canary("r3", "y", None, 0.0)
    b.add_canary("r4", "y", None, 0.0)
    b.add_canary("r4", "y", None, 0.0)
    b.expire(10.0)
    a.stats.merge(b.stats)
    assert encode(a.stats) == {
        "paired": 1, "evicted": 1, "expired_live_only": 0, "expired_canary_only": 1, "duplicates": 1,
    }
