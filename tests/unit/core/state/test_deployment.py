"""Tests of monitor.core.state.deployment: an in-order oracle, the merge law, checkpoints, comparisons, class rules."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.events import Feedback, Prediction
from monitor.core.state.codec import decode, encode
from monitor.core.state.deployment import DeploymentState
from monitor.errors import EventError

LABELS = ("invoice", "contract", "other")
NAME = "doc-classifier"

Event = tuple[str, Prediction]  # (role, prediction)


def prediction(request_id: str, label: str, ts: float, version: str | None = None) -> Prediction:
    return Prediction(request_id=request_id, deployment=NAME, label=label, ts=ts, model_version=version)


def new_state(**options: Any) -> DeploymentState:
    options = {"window_s": 60.0, "windows_kept": 1000, "max_open_requests": 100_000, **options}
    return DeploymentState.new(NAME, **options)


def feed(state: DeploymentState, events: list[Event]) -> DeploymentState:
    for role, event in events:
        state.add_prediction(role, event)
    return state


def comparable(state: DeploymentState) -> dict[str, Any]:
    """The state as the codec encodes it (the joins' requests as mappings: order is not compared).

    The spot-check sampler and its review queue are left out: which disagreements a
    replica picks under its own per-minute budget is a policy decision, not a statistic
    that adds up (their counters do add up, and are checked below).
    """
    data = encode(state)
    del data["sampler"], data["review"]
    return data


@st.composite
def streams(draw: st.DrawFn, prefix: str, versions: tuple[str, ...] = ("v2",), start: float = 0.0) -> list[Event]:
    """Predictions of requests with ids ``prefix<i>`` in some arrival order, times in [start, start + 3000)."""
    n = draw(st.integers(min_value=0, max_value=20))
    events: list[Event] = []
    for i in range(n):
        sides = draw(st.sampled_from(["live", "canary", "both"]))
        ts = start + draw(st.integers(min_value=0, max_value=3000))
        live_version = draw(st.sampled_from(["v1", None]))
        if sides != "canary":
            events.append(("live", prediction(f"{prefix}{i}", draw(st.sampled_from(LABELS)), ts, live_version)))
        if sides != "live":
            canary_ts = ts + draw(st.integers(min_value=0, max_value=5))
            version = draw(st.sampled_from(versions))
            events.append(("canary", prediction(f"{prefix}{i}", draw(st.sampled_from(LABELS)), canary_ts, version)))
    return draw(st.permutations(events))


@st.composite
def canary_first_streams(draw: st.DrawFn, prefix: str, start: float) -> list[Event]:
    """A stream of one canary version whose first event is a canary answer at its earliest time."""
    rest = draw(streams(prefix, start=start + 1))
    first = ("canary", prediction(f"{prefix}-first", draw(st.sampled_from(LABELS)), start, "v2"))
    return [first, *rest]


# -- an oracle on in-order streams ------------------------------------------------------------


WINDOW_S = 60.0
STEP_S = 25.0


@given(st.lists(st.tuples(st.sampled_from(["live", "canary"]), st.sampled_from(LABELS),
                          st.sampled_from(["v2", "v3", "v4"]), st.integers(0, 15)), max_size=60))
def test_in_order_stream_matches_a_batch_count(rows: list[tuple[str, str, str, int]]) -> None:
    """Events in event-time order (unique times, 25 s apart); request ids drawn from a small pool."""
    state = new_state(window_s=WINDOW_S)
    events = [
        (role, prediction(f"r{rid}", label, i * STEP_S, version if role == "canary" else "v1"))
        for i, (role, label, version, rid) in enumerate(rows)
    ]
    feed(state, events)
    assert state.events == {
        "live": sum(role == "live" for role, _ in events),
        "canary": sum(role == "canary" for role, _ in events),
        "feedback": 0,
    }
    for role in ("live", "canary"):
        for version, counts in state.totals[role].items():
            expected = Counter(p.label for r, p in events if r == role and (p.model_version or "") == version)
            assert counts.to_dict() == dict(expected)
    # Each version's comparison starts at its first canary answer and holds that version's canary answers.
    started = {}
    for role, p in events:
        if role == "canary":
            started.setdefault(p.model_version, p.ts)
    assert {v: c.started_at for v, c in state.comparisons.items()} == started
    for version, comparison in state.comparisons.items():
        canary = Counter(p.label for r, p in events if r == "canary" and p.model_version == version)
        assert comparison.canary.to_dict() == dict(canary)
        # Live answers count for the newest version: from the start of the window in which it
        # appeared until the next version appears.
        live_from = (started[version] // WINDOW_S) * WINDOW_S
        end = min((t for t in started.values() if t > started[version]), default=float("inf"))
        live = Counter(p.label for r, p in events if r == "live" and live_from <= p.ts < end)
        assert comparison.live.to_dict() == dict(live)
    if started:
        assert state.current is state.comparisons[max(started, key=started.__getitem__)]
    else:
        assert state.current is None
    assert set(state.classes) == {p.label for _, p in events}
    assert state.watermark == max((p.ts for _, p in events), default=0.0)


def test_live_read_before_the_canary_counts_from_the_canarys_window() -> None:
    """Whether the live or the canary topic is read first does not matter within the kept windows."""
    state = new_state(window_s=WINDOW_S)
    feed(state, [
        ("live", prediction("r0", "other", 100.0, "v1")),  # window 60: before the canary's window
        ("live", prediction("r1", "invoice", 125.0, "v1")),  # window 120, read before the canary
        ("canary", prediction("r2", "contract", 130.0, "v2")),
        ("live", prediction("r3", "contract", 170.0, "v1")),
    ])
    assert state.comparisons["v2"].live.to_dict() == {"invoice": 1, "contract": 1}


def test_pairs_land_in_the_canary_versions_confusion() -> None:
    state = new_state()
    feed(state, [
        ("canary", prediction("r1", "invoice", 0.0, "v2")),
        ("live", prediction("r1", "invoice", 1.0, "v1")),
        ("live", prediction("r2", "other", 2.0, "v1")),
        ("canary", prediction("r2", "contract", 3.0, "v2")),
        ("live", prediction("r3", "other", 4.0, "v1")),  # never answered by canary
    ])
    comparison = state.comparisons["v2"]
    assert comparison.confusion == {"invoice": {"invoice": 1}, "other": {"contract": 1}}
    assert (comparison.pairs, comparison.disagreements) == (2, 1)
    assert comparison.live_version() == "v1"
    assert len(state.join) == 1
    window = state.windows.at(0.0)
    assert (window.pairs, window.disagreements) == (2, 1)


def test_feedback_counts_and_moves_the_watermark() -> None:
    state = new_state()
    state.add_feedback(Feedback("r1", NAME, 500.0, label="invoice"))
    assert state.events["feedback"] == 1
    assert state.watermark == 500.0


def test_tick_expires_the_join_at_the_watermark() -> None:
    state = new_state(join_ttl_s=10.0)
    feed(state, [("live", prediction("r1", "invoice", 0.0)), ("live", prediction("r2", "invoice", 11.0))])
    state.tick()
    assert list(state.join.open) == ["r2"]
    assert state.join.stats.expired_live_only == 1


# -- merge law --------------------------------------------------------------------------------


@settings(deadline=None)
@given(st.data())
def test_merge_of_disjoint_streams_equals_the_whole(data: st.DataObject) -> None:
    """Two replicas' states add up to the state of one process fed both streams.

    Each stream opens with its canary's first answer (the comparison's start), and A's
    start is no later than B's.
    """
    a_events = data.draw(canary_first_streams("a", start=0.0))
    b_start = data.draw(st.integers(min_value=0, max_value=3000))
    b_events = data.draw(canary_first_streams("b", start=float(b_start)))
    whole = feed(new_state(), a_events + b_events)
    merged = feed(new_state(), a_events).merge(feed(new_state(), b_events))
    assert comparable(merged) == comparable(whole)
    assert merged.sampler.offered == whole.sampler.offered
    assert merged.current is not None and whole.current is not None
    assert merged.current.canary_version == whole.current.canary_version


@settings(deadline=None)
@given(streams("a", versions=("v2", "v3")))
def test_merge_with_an_empty_state_changes_nothing(events: list[Event]) -> None:
    state = feed(new_state(), events)
    before = comparable(state)
    assert comparable(state.merge(new_state())) == before
    assert comparable(new_state().merge(feed(new_state(), events))) == before


def test_merge_keeps_live_answers_of_a_replica_without_canary() -> None:
    a_events: list[Event] = [("canary", prediction("a1", "invoice", 0.0, "v2"))]
    b_events: list[Event] = [("live", prediction("b1", "invoice", 1.0, "v1"))]
    whole = feed(new_state(), a_events + b_events)
    merged = feed(new_state(), a_events).merge(feed(new_state(), b_events))
    assert whole.comparisons["v2"].live.total == 1
    assert merged.comparisons["v2"].live.total == whole.comparisons["v2"].live.total


def test_comparison_starts_at_the_earliest_canary_time() -> None:
    a_events: list[Event] = [("canary", prediction("a1", "invoice", 10.0, "v2"))]
    b_events: list[Event] = [("canary", prediction("b1", "invoice", 5.0, "v2"))]
    whole = feed(new_state(), a_events + b_events)
    merged = feed(new_state(), a_events).merge(feed(new_state(), b_events))
    assert merged.comparisons["v2"].started_at == 5.0
    assert whole.comparisons["v2"].started_at == 5.0


# -- checkpoints ------------------------------------------------------------------------------


@settings(deadline=None)
@given(
    streams("r", versions=("v2", "v3", "")),
    st.integers(min_value=0, max_value=40),
    st.booleans(),
    st.integers(min_value=1, max_value=6),
)
def test_round_trip_gives_an_equal_state(events: list[Event], cut: int, fixed: bool, max_open: int) -> None:
    options: dict[str, Any] = {"max_open_requests": max_open, "join_ttl_s": 100.0, "windows_kept": 5}
    if fixed:
        options["classes"] = list(LABELS)
    state = feed(new_state(**options), events[:cut])
    state.tick()
    restored = decode(json.loads(json.dumps(encode(state))), DeploymentState)
    assert encode(restored) == encode(state)
    assert restored.fixed_classes == fixed
    assert (restored.current is None) == (state.current is None)
    if state.current is not None:
        assert restored.current is not None
        assert restored.current.canary_version == state.current.canary_version
    # The restored state goes on exactly like the original.
    feed(state, events[cut:])
    feed(restored, events[cut:])
    state.tick()
    restored.tick()
    assert encode(restored) == encode(state)


def test_round_trip_keeps_class_rules() -> None:
    state = DeploymentState.new(NAME, classes=["a", "b"])
    restored = decode(encode(state), DeploymentState)
    with pytest.raises(EventError) as caught:
        restored.add_prediction("live", prediction("r1", "c", 0.0))
    assert caught.value.reason == "unknown_class"
    capped = DeploymentState.new(NAME, max_classes=2)
    feed(capped, [("live", prediction("r1", "a", 0.0)), ("live", prediction("r2", "b", 0.0))])
    restored = decode(encode(capped), DeploymentState)
    with pytest.raises(EventError) as caught:
        restored.add_prediction("live", prediction("r3", "c", 0.0))
    assert caught.value.reason == "too_many_classes"


# -- comparisons and versions -----------------------------------------------------------------


def test_new_canary_version_starts_a_new_comparison_and_becomes_current() -> None:
    state = new_state(window_s=WINDOW_S)
    assert state.current is None
    feed(state, [("live", prediction("r0", "invoice", 0.0, "v1"))])
    assert state.current is None  # no canary yet
    feed(state, [
        ("canary", prediction("r1", "invoice", 120.0, "v2")),
        ("live", prediction("r1", "invoice", 120.0, "v1")),
    ])
    assert state.current is state.comparisons["v2"]
    feed(state, [
        ("canary", prediction("r2", "other", 240.0, "v3")),
        ("live", prediction("r2", "contract", 240.0, "v1")),
        ("canary", prediction("r3", "contract", 250.0, "v2")),  # the older candidate still answers
        ("live", prediction("r3", "contract", 250.0, "v1")),
    ])
    assert set(state.comparisons) == {"v2", "v3"}
    assert state.current is state.comparisons["v3"]
    v2, v3 = state.comparisons["v2"], state.comparisons["v3"]
    assert (v2.started_at, v3.started_at) == (120.0, 240.0)
    assert v2.canary.to_dict() == {"invoice": 1, "contract": 1}
    assert v3.canary.to_dict() == {"other": 1}
    # r0 came before v2's window; live answers after v3 appeared count for v3, the newest candidate.
    assert v2.live.to_dict() == {"invoice": 1}
    assert v3.live.to_dict() == {"contract": 2}
    # Pairs go to the comparison of the canary version that answered.
    assert v2.confusion == {"invoice": {"invoice": 1}, "contract": {"contract": 1}}
    assert v3.confusion == {"contract": {"other": 1}}
    assert state.totals["canary"]["v2"].to_dict() == {"invoice": 1, "contract": 1}
    assert state.totals["live"]["v1"].to_dict() == {"invoice": 2, "contract": 2}


def test_canary_without_version_is_its_own_comparison() -> None:
    state = feed(new_state(), [("canary", prediction("r1", "invoice", 0.0))])
    assert state.current is state.comparisons[""]
    assert state.totals["canary"][""].to_dict() == {"invoice": 1}


# -- class rules ------------------------------------------------------------------------------


def test_unknown_class_with_fixed_classes_is_refused_and_not_counted() -> None:
    state = new_state(classes=list(LABELS))
    feed(state, [("canary", prediction("r1", "invoice", 0.0, "v2"))])
    before = encode(state)
    for role in ("live", "canary"):
        with pytest.raises(EventError) as caught:
            state.add_prediction(role, prediction("r2", "receipt", 1.0, "v2"))
        assert caught.value.reason == "unknown_class"
    assert encode(state) == before
    assert state.classes == list(LABELS)


def test_class_cap_is_enforced_and_not_counted() -> None:
    state = new_state(max_classes=2)
    feed(state, [("live", prediction("r1", "a", 0.0)), ("live", prediction("r2", "b", 0.0)),
                 ("live", prediction("r3", "a", 0.0))])
    before = encode(state)
    with pytest.raises(EventError) as caught:
        state.add_prediction("canary", prediction("r4", "c", 1.0, "v2"))
    assert caught.value.reason == "too_many_classes"
    assert encode(state) == before
    assert state.classes == ["a", "b"]


def test_learned_classes_keep_first_seen_order() -> None:
    state = feed(new_state(), [("live", prediction("r1", "z", 0.0)), ("canary", prediction("r1", "a", 0.0)),
                               ("live", prediction("r2", "z", 0.0)), ("live", prediction("r3", "m", 0.0))])
    assert state.classes == ["z", "a", "m"]


def test_a_late_event_that_completes_a_pair_is_one_late_event() -> None:
    state = new_state(windows_kept=2)
    state.add_prediction("live", prediction("old", "invoice", 10.0, "v1"))
    feed(state, [("live", prediction(f"r{i}", "invoice", 60.0 * i, "v1")) for i in range(2, 5)])
    # The windows of 120 s and later are kept; an answer from 10 s is late.
    state.add_prediction("canary", prediction("old", "other", 10.0, "v2"))
    assert state.windows.late == 1
    assert state.join.stats.paired == 1
