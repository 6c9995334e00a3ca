"""Tests of monitor.core.state.windows: the right window, at most ``kept`` windows, late events counted."""

from __future__ import annotations

import doctest
import math
from collections import Counter, defaultdict

from hypothesis import given
from hypothesis import strategies as st

import monitor.core.state.windows
from monitor.core.state.codec import decode, encode
from monitor.core.state.windows import Window, Windows

LABELS = ("invoice", "contract", "other")
LENGTH = 60.0

events = st.lists(
    st.tuples(st.integers(min_value=0, max_value=20 * 60 * 1000).map(lambda ms: ms / 1000), st.sampled_from(LABELS)),
    max_size=60,
)


def window_start(ts: float, length: float) -> float:
    """The definition: the multiple of ``length`` at or below ``ts``."""
    return math.floor(ts / length) * length


def batch(stream: list[tuple[float, str]], length: float) -> dict[float, Counter[str]]:
    by_start: dict[float, Counter[str]] = defaultdict(Counter)
    for ts, label in stream:
        by_start[window_start(ts, length)][label] += 1
    return by_start


def feed(windows: Windows, stream: list[tuple[float, str]]) -> None:
    for ts, label in stream:
        windows.at(ts).live.update(label)
        assert len(windows.by_start) <= windows.kept


def test_doctests() -> None:
    assert doctest.testmod(monitor.core.state.windows).failed == 0


@given(st.floats(min_value=0, max_value=1e10, allow_nan=False), st.sampled_from([1.0, 10.0, 60.0, 300.0]))
def test_event_lands_in_the_window_holding_it(ts: float, length: float) -> None:
    window = Windows(length_s=length, kept=3).at(ts)
    assert window.start <= ts < window.start + length
    assert window.start == window_start(ts, length)


def test_window_boundaries() -> None:
    windows = Windows(length_s=LENGTH, kept=5)
    assert windows.at(59.999).start == 0.0
    assert windows.at(60.0).start == 60.0
    assert windows.at(119.999) is windows.at(60.0)


@given(events)
def test_in_order_stream_keeps_the_newest_windows_exactly(stream: list[tuple[float, str]]) -> None:
    stream = sorted(stream)
    kept = 4
    windows = Windows(length_s=LENGTH, kept=kept)
    feed(windows, stream)
    expected = batch(stream, LENGTH)
    newest = sorted(expected)[-kept:]
    assert [w.start for w in windows.recent()] == newest
    assert all(windows.by_start[start].live.to_dict() == dict(expected[start]) for start in newest)
    assert windows.late == 0


@given(st.permutations(list(range(40))).map(lambda order: [(i * 7.5, LABELS[i % 3]) for i in order]))
def test_any_order_within_kept_windows_counts_everything(stream: list[tuple[float, str]]) -> None:
    windows = Windows(length_s=LENGTH, kept=10)  # 40 events over 300 s: 5 windows
    feed(windows, stream)
    expected = batch(stream, LENGTH)
    assert {w.start: w.live.to_dict() for w in windows.recent()} == {s: dict(c) for s, c in expected.items()}
    assert windows.late == 0


@given(events, st.integers(min_value=1, max_value=5))
def test_any_order_never_loses_the_newest_window(stream: list[tuple[float, str]], kept: int) -> None:
    windows = Windows(length_s=LENGTH, kept=kept)
    feed(windows, stream)
    expected = batch(stream, LENGTH)
    if stream:
        newest = max(expected)
        assert windows.recent()[-1].start == newest
        assert windows.by_start[newest].live.to_dict() == dict(expected[newest])
    # Nothing is counted twice: kept windows plus late events never exceed what came in.
    counted = sum(w.live.total for w in windows.recent())
    assert counted + windows.late <= len(stream)
    for window in windows.recent():
        assert window.live.total <= sum(expected[window.start].values())


def test_late_event_is_counted_as_late_and_not_kept() -> None:
    windows = Windows(length_s=LENGTH, kept=2)
    feed(windows, [(0.0, "invoice"), (60.0, "invoice"), (120.0, "invoice")])
    assert [w.start for w in windows.recent()] == [60.0, 120.0]
    scratch = windows.at(10.0)
    scratch.live.update("other")
    assert windows.late == 1
    assert [w.start for w in windows.recent()] == [60.0, 120.0]
    assert sum(w.live.total for w in windows.recent()) == 2
    # An old event whose window is still kept is not late.
    windows.at(61.0).live.update("other")
    assert windows.late == 1
    assert windows.by_start[60.0].live.to_dict() == {"invoice": 1, "other": 1}


def test_out_of_order_event_is_not_late_while_there_is_room() -> None:
    windows = Windows(length_s=LENGTH, kept=3)
    feed(windows, [(600.0, "a"), (0.0, "b")])
    assert [w.start for w in windows.recent()] == [0.0, 600.0]
    assert windows.late == 0


def test_merge_adds_windows_and_late_counts() -> None:
    a, b = Windows(length_s=LENGTH, kept=3), Windows(length_s=LENGTH, kept=3)
    feed(a, [(0.0, "x"), (60.0, "x")])
    feed(b, [(60.0, "y"), (120.0, "y"), (180.0, "y")])
    b.late = 2
    a.merge(b)
    assert {w.start: w.live.to_dict() for w in a.recent()} == {
        60.0: {"x": 1, "y": 1}, 120.0: {"y": 1}, 180.0: {"y": 1},
    }
    assert a.late == 2
    # The merged-in windows are copies: b is left alone.
    a.at(180.0).live.update("z")
    assert b.by_start[180.0].live.to_dict() == {"y": 1}


@given(events)
def test_round_trip(stream: list[tuple[float, str]]) -> None:
    windows = Windows(length_s=LENGTH, kept=3)
    half = len(stream) // 2
    feed(windows, stream[:half])
    restored = decode(encode(windows), Windows)
    assert restored == windows
    feed(windows, stream[half:])
    feed(restored, stream[half:])
    assert restored == windows


def test_window_round_trip() -> None:
    window = Window(120.0)
    window.live.update("a")
    window.canary.update("b", 2)
    window.pairs, window.disagreements = 3, 1
    assert decode(encode(window), Window) == window
    # the form the API and Elasticsearch documents show (docs/contract.md)
    assert encode(window) == {"start": 120.0, "live": {"a": 1}, "canary": {"b": 2}, "live_versions": {},
                                "pairs": 3, "disagreements": 1}
