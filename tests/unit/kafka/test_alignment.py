"""Tests of monitor.kafka.alignment: records handed on in message-time order across partitions, within the lead."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.records import Record
from monitor.kafka.alignment import HELD_RECHECK_S, EventTimeAlignment

A, B = ("live", 0), ("canary", 0)


def _records(key: tuple[str, int], first_offset: int, times: list[float]) -> list[Record]:
    return [Record(key[0], key[1], first_offset + i, None, b"{}", ts) for i, ts in enumerate(times)]


def test_nothing_is_held_while_no_partition_is_known_to_have_a_backlog() -> None:
    alignment = EventTimeAlignment(max_lead_s=5)
    batch = _records(A, 0, [100.0, 200.0, 300.0])
    assert alignment.admit(batch, 0.0) == batch
    assert alignment.held == {}


def test_a_partition_ahead_of_one_with_a_backlog_waits_for_it() -> None:
    alignment = EventTimeAlignment(max_lead_s=5)
    alignment.ends.update({A: 1000, B: 1000})
    slow = _records(B, 0, [10.0, 11.0])
    fast = _records(A, 0, [12.0, 14.0, 16.0, 30.0])
    out = alignment.admit(slow + fast, 0.0)
    # B (at 11 s, with records left to fetch) paces: A passes up to 16 s, its 30 s record waits.
    assert [r.timestamp for r in out if r.topic == "live"] == [12.0, 14.0, 16.0]
    assert [r.timestamp for r in alignment.held[A]] == [30.0]
    out = alignment.admit(_records(B, 2, [26.0]), 0.0)
    assert sorted((r.topic, r.timestamp) for r in out) == [("canary", 26.0), ("live", 30.0)]
    assert alignment.held == {}


def test_a_release_is_capped_and_the_rest_stays_held_in_order() -> None:
    alignment = EventTimeAlignment(max_lead_s=1)
    alignment.ends.update({A: 100, B: 100})
    alignment.admit(_records(B, 0, [0.0]) + _records(A, 0, [5.0, 6.0, 7.0, 8.0]), 0.0)
    out = alignment.admit(_records(B, 1, [9.0]), 0.0, max_records=3)
    assert [(r.topic, r.offset) for r in out] == [("live", 0), ("live", 1), ("live", 2)]
    out = alignment.admit([], 0.0, max_records=3)
    assert [(r.topic, r.offset) for r in out] == [("live", 3), ("canary", 1)]


def test_a_poll_waits_for_new_records_only_as_long_as_nothing_held_is_due() -> None:
    alignment = EventTimeAlignment(max_lead_s=1)
    alignment.ends.update({A: 100, B: 100})
    assert alignment.wait_s(1.0) == 1.0  # nothing held: wait for the next fetch
    alignment.admit(_records(B, 0, [0.0]) + _records(A, 0, [5.0, 6.0, 7.0, 8.0]), 0.0)
    # Held, none due: look again soon (a partition may reach its end with no new record).
    assert alignment.wait_s(1.0) == HELD_RECHECK_S
    alignment.admit(_records(B, 1, [9.0]), 0.0, max_records=3)
    assert alignment.wait_s(1.0) == 0.0  # due records were left over by the cap: no waiting
    alignment.admit([], 0.0, max_records=3)
    assert alignment.held == {} and alignment.wait_s(1.0) == 1.0


def test_everything_held_passes_once_no_partition_has_records_left_to_fetch() -> None:
    alignment = EventTimeAlignment(max_lead_s=1)
    alignment.ends.update({A: 3, B: 2})
    alignment.admit(_records(B, 0, [1.0]) + _records(A, 0, [1.0, 50.0, 60.0]), 0.0)
    assert len(alignment.held[A]) == 2
    out = alignment.admit(_records(B, 1, [2.0]), 0.0)  # B is now at its end
    assert [r.offset for r in out if r.topic == "live"] == [1, 2]
    assert alignment.held == {}


def test_a_partition_holding_too_much_is_paused_and_resumed_when_half_has_passed() -> None:
    alignment = EventTimeAlignment(max_lead_s=1, max_held_bytes=4 * 102)
    alignment.ends.update({A: 100, B: 100})
    alignment.admit(_records(B, 0, [0.0]) + _records(A, 0, [10.0, 11.0, 12.0, 13.0]), 0.0)
    assert alignment.decide() == ([A], [])
    alignment.applied([A], [])
    alignment.admit(_records(B, 1, [10.5]), 0.0)  # A's records up to 11.5 s pass: 2 of 4 left
    assert alignment.decide() == ([], [A])


def test_a_partition_not_heard_from_yet_holds_the_others_back_for_its_grace() -> None:
    alignment = EventTimeAlignment(max_lead_s=1, start_grace_s=5)
    alignment.started([A, B], now=0.0)
    alignment.ends.update({A: 100, B: 100})
    assert alignment.admit(_records(A, 0, [10.0, 11.0]), 1.0) == []  # B may still have older records
    out = alignment.admit(_records(B, 0, [10.5]), 2.0)
    assert [(r.topic, r.timestamp) for r in out] == [("live", 10.0), ("live", 11.0), ("canary", 10.5)]
    alignment.started([B], now=3.0)  # sought: its position is unknown again
    assert alignment.admit(_records(A, 2, [12.0]), 4.0) == []
    assert [r.timestamp for r in alignment.admit([], 8.5)] == [12.0]  # B's grace is over


def test_an_empty_partition_is_not_waited_for() -> None:
    alignment = EventTimeAlignment(max_lead_s=1, start_grace_s=5)
    alignment.started([A, B], now=0.0)
    alignment.ends.update({A: 100, B: 0})
    assert len(alignment.admit(_records(A, 0, [10.0]), 0.5)) == 1


def test_forgetting_a_partition_drops_what_it_held_and_its_pause() -> None:
    alignment = EventTimeAlignment(max_lead_s=1, max_held_bytes=1)
    alignment.ends.update({A: 100, B: 100})
    alignment.admit(_records(B, 0, [0.0]) + _records(A, 0, [10.0]), 0.0)
    alignment.applied(*alignment.decide())
    alignment.forget([A])
    assert A not in alignment.held and A not in alignment.paused and A not in alignment.fetched


def test_held_records_count_as_fetched_but_are_not_handed_on() -> None:
    """So the positions processed (hence the lag and what is committed) still include them."""
    alignment = EventTimeAlignment(max_lead_s=1)
    alignment.ends.update({A: 10, B: 10})
    out = alignment.admit(_records(B, 0, [0.0]) + _records(A, 0, [5.0, 6.0]), 0.0)
    assert [(r.topic, r.offset) for r in out] == [("canary", 0)]
    assert alignment.fetched == {A: 2, B: 1} and [r.offset for r in alignment.held[A]] == [0, 1]


def test_off_hands_every_record_on_at_once() -> None:
    alignment = EventTimeAlignment(max_lead_s=0)
    alignment.ends.update({A: 100, B: 100})
    batch = _records(B, 0, [0.0]) + _records(A, 0, [1e6])
    assert alignment.admit(batch, 0.0) == batch


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0, 1000), min_size=1, max_size=40),
    st.lists(st.floats(0, 1000), min_size=1, max_size=40),
    st.integers(1, 7),
    st.floats(0.1, 50),
)
def test_every_record_passes_once_in_offset_order(
    a_gaps: list[float], b_gaps: list[float], batch: int, lead: float
) -> None:
    """Whatever the timestamps and batches, every record comes out exactly once, in offset order
    per partition, by the time both partitions are read to their end."""
    a = _records(A, 0, _cumulative(a_gaps))
    b = _records(B, 0, _cumulative(b_gaps))
    alignment = EventTimeAlignment(max_lead_s=lead, max_held_bytes=5 * 102)
    alignment.ends.update({A: len(a), B: len(b)})
    out: list[Record] = []
    position = {A: 0, B: 0}
    source = {A: a, B: b}
    while position[A] < len(a) or position[B] < len(b):
        fetched: list[Record] = []
        for key in (A, B):
            if key in alignment.paused:
                continue  # a paused partition is not fetched
            fetched.extend(source[key][position[key]:position[key] + batch])
            position[key] = min(len(source[key]), position[key] + batch)
        out.extend(alignment.admit(fetched, 0.0, max_records=batch))
        alignment.applied(*alignment.decide())
    out.extend(alignment.admit([], 0.0))
    assert [r.offset for r in out if r.topic == "live"] == list(range(len(a)))
    assert [r.offset for r in out if r.topic == "canary"] == list(range(len(b)))
    assert alignment.held == {} and alignment.fetched == {A: len(a), B: len(b)}


def _cumulative(gaps: list[float]) -> list[float]:
    total, times = 0.0, []
    for gap in gaps:
        total += gap
        times.append(total)
    return times
