"""Tests of monitor.core.state.codec: every state type round-trips, copies independently, and merges lawfully.

For each type: ``decode(encode(s)) == s`` (also through JSON bytes), ``clone(s) == s``, and
changing the clone leaves ``s`` as it was. For each type with a merge: the state built from
events ``xs`` merged with the one built from ``ys`` equals the state built from ``xs + ys``
(where a type's semantics make that only partly true, the test says which part and why).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.events import Feedback, Prediction
from monitor.core.evidence import EvidenceSettings, SequentialEvidence
from monitor.core.state.codec import clone, decode, encode, from_json, to_json
from monitor.core.state.counts import ClassCounts
from monitor.core.state.deployment import Comparison, DeploymentState
from monitor.core.state.feature_intake import FeatureIntake, IntakeSettings, SampleRow
from monitor.core.state.features import CategoricalColumn, ColumnSpec, FeatureLayout, FeatureStats, NumericColumn
from monitor.core.state.feedback import Answers, FeedbackJoin, FeedbackStats, Scored, Truth
from monitor.core.state.join import JoinStats, OpenRequest, RequestJoin
from monitor.core.state.outcomes import Outcomes
from monitor.core.state.spotcheck import ReviewQueue, SpotcheckCase, SpotcheckSampler
from monitor.core.state.windows import Window, Windows
from monitor.core.stats.confidence_sequence import BetGrid, BoundedMeanCS, MeanState
from monitor.core.stats.drift import Summary
from monitor.core.stats.sequential import PairedAccuracy, PairedDifference, RateBelow

LABELS = ("invoice", "contract", "other")
labels = st.lists(st.sampled_from(LABELS), max_size=30)
values = st.lists(st.floats(-1e6, 1e6, allow_nan=False, width=32), max_size=30)
LAYOUT = FeatureLayout({
    "x": ColumnSpec("x", "numeric", edges=(-10.0, 0.0, 10.0)),
    "lang": ColumnSpec("lang", "categorical", categories=("de", "en"), max_categories=4),
    "scores.invoice": ColumnSpec("scores.invoice", "numeric", edges=(0.25, 0.5, 0.75)),
})
feature_rows = st.lists(
    st.fixed_dictionaries({
        "x": st.one_of(st.none(), st.floats(-20, 20), st.text(max_size=2)),
        "lang": st.one_of(st.none(), st.sampled_from(["de", "en", "fr", "it", "es", "pt"]), st.integers(0, 2)),
    }),
    max_size=20,
)


def assert_round_trips(state: Any, change: Callable[[Any], object]) -> None:
    """decode(encode(s)) == s, through JSON too; clone(s) == s; ``change`` on the clone leaves s alone."""
    kind = type(state)
    before = encode(state)
    assert decode(encode(state), kind) == state
    assert decode(json.loads(json.dumps(encode(state))), kind) == state
    assert decode(from_json(to_json(state)), kind) == state
    assert encode(state) == before  # encoding reads and never changes
    copy = clone(state)
    assert copy == state
    change(copy)
    assert copy != state
    assert encode(state) == before


# -- counts and windows -----------------------------------------------------------------------


@given(labels)
def test_class_counts_round_trip(xs: list[str]) -> None:
    assert_round_trips(ClassCounts().update_many(xs), lambda c: c.update("invoice"))


@given(labels, labels)
def test_class_counts_merge_law(xs: list[str], ys: list[str]) -> None:
    assert ClassCounts().update_many(xs).merge(ClassCounts().update_many(ys)) == ClassCounts().update_many(xs + ys)


def window_of(events: list[tuple[str, bool]]) -> Window:
    window = Window(120.0)
    for label, disagree in events:
        window.live.update(label)
        window.canary.update(label)
        window.live_versions.update("v1")
        window.pairs += 1
        window.disagreements += disagree
    return window


window_events = st.lists(st.tuples(st.sampled_from(LABELS), st.booleans()), max_size=20)


@given(window_events)
def test_window_round_trip(xs: list[tuple[str, bool]]) -> None:
    assert_round_trips(window_of(xs), lambda w: w.canary.update("other"))


@given(window_events, window_events)
def test_window_merge_law(xs: list[tuple[str, bool]], ys: list[tuple[str, bool]]) -> None:
    assert window_of(xs).merge(window_of(ys)) == window_of(xs + ys)


def windows_of(events: list[tuple[float, str]]) -> Windows:
    # kept is larger than the windows of any stream here: with a smaller bound, which windows a replica
    # has let go (and counted late) depends on its own order of arrival, not on the union's
    windows = Windows(length_s=60.0, kept=1000)
    for ts, label in events:
        windows.at(ts).live.update(label)
    return windows


window_times = st.lists(st.tuples(st.floats(0, 3000), st.sampled_from(LABELS)), max_size=30)


@given(window_times)
def test_windows_round_trip(xs: list[tuple[float, str]]) -> None:
    assert_round_trips(windows_of(xs), lambda w: w.at(5000.0).live.update("invoice"))


@given(window_times, window_times)
def test_windows_merge_law(xs: list[tuple[float, str]], ys: list[tuple[float, str]]) -> None:
    merged, whole = windows_of(xs).merge(windows_of(ys)), windows_of(xs + ys)
    assert merged == whole
    assert merged.recent() == whole.recent()


# -- joins and outcomes -----------------------------------------------------------------------


requests = st.lists(
    st.tuples(st.integers(0, 15), st.sampled_from(["live", "canary"]), st.sampled_from(LABELS), st.floats(0, 100)),
    max_size=30,
)


def join_of(events: list[tuple[int, str, str, float]], prefix: str) -> RequestJoin:
    join = RequestJoin(max_open=1000, ttl_s=1e9)
    for i, role, label, ts in events:
        if role == "live":
            join.add_live(f"{prefix}{i}", label, ts, {label: 1.0})
        else:
            join.add_canary(f"{prefix}{i}", label, "v2", ts)
    return join


@given(requests)
def test_request_join_round_trip(xs: list[tuple[int, str, str, float]]) -> None:
    join = join_of(xs, "r")
    assert_round_trips(join, lambda j: j.add_live("new", "invoice", 0.0))
    assert_round_trips(join.stats, lambda s: setattr(s, "paired", s.paired + 1))
    assert_round_trips(OpenRequest(1.0, "invoice", None, None, {"invoice": 0.5}), lambda e: setattr(e, "ts", 2.0))


@given(requests, requests)
def test_request_join_merge_law(xs: list[tuple[int, str, str, float]], ys: list[tuple[int, str, str, float]]) -> None:
    # Replicas hold disjoint requests (topics co-partitioned by request id): ids differ by prefix.
    merged = join_of(xs, "a").merge(join_of(ys, "b"))
    whole = join_of([(i, r, label, ts) for i, r, label, ts in xs], "a")
    for i, role, label, ts in ys:
        if role == "live":
            whole.add_live(f"b{i}", label, ts, {label: 1.0})
        else:
            whole.add_canary(f"b{i}", label, "v2", ts)
    assert merged == whole
    stats = JoinStats()
    assert stats.merge(join_of(xs, "a").stats).merge(join_of(ys, "b").stats) == whole.stats


feedback_events = st.lists(
    st.tuples(st.integers(0, 10), st.booleans(), st.sampled_from(LABELS), st.sampled_from(LABELS), st.floats(0, 100)),
    max_size=30,
)


def feedback_of(events: list[tuple[int, bool, str, str, float]], prefix: str) -> tuple[FeedbackJoin, Outcomes]:
    join, outcomes = FeedbackJoin(max_requests=1000, ttl_s=1e9), Outcomes()
    for i, is_truth, first, second, ts in events:
        rid = f"{prefix}{i}"
        scored: Scored | None
        if is_truth:
            scored = join.add_truth(rid, Truth(ts, first, None, "user"))
        else:
            scored = join.add_answers(rid, Answers(ts, first, second, "v2"))
        if scored is not None:
            outcomes.add(scored)
    return join, outcomes


@given(feedback_events)
def test_feedback_join_and_outcomes_round_trip(xs: list[tuple[int, bool, str, str, float]]) -> None:
    join, outcomes = feedback_of(xs, "r")
    assert_round_trips(join, lambda j: j.add_truth("new", Truth(0.0, "invoice", None, "user")))
    assert_round_trips(join.stats, lambda s: setattr(s, "matched", s.matched + 1))
    assert_round_trips(outcomes, lambda o: o.live_labelled.update("invoice"))
    assert_round_trips(Truth(1.0, None, True, "spotcheck"), lambda t: setattr(t, "ts", 2.0))


@given(feedback_events, feedback_events)
def test_feedback_join_and_outcomes_merge_law(
    xs: list[tuple[int, bool, str, str, float]], ys: list[tuple[int, bool, str, str, float]]
) -> None:
    (join_a, outcomes_a), (join_b, outcomes_b) = feedback_of(xs, "a"), feedback_of(ys, "b")
    whole_join, whole_outcomes = feedback_of(xs, "a")
    for i, is_truth, first, second, ts in ys:
        scored = (
            whole_join.add_truth(f"b{i}", Truth(ts, first, None, "user")) if is_truth
            else whole_join.add_answers(f"b{i}", Answers(ts, first, second, "v2"))
        )
        if scored is not None:
            whole_outcomes.add(scored)
    assert join_a.merge(join_b) == whole_join
    assert outcomes_a.merge(outcomes_b) == whole_outcomes
    assert FeedbackStats().merge(feedback_of(xs, "a")[0].stats).merge(join_b.stats) == whole_join.stats


# -- spot checks: policy state, no merge law ----------------------------------------------------


def case(i: int) -> SpotcheckCase:
    return SpotcheckCase(f"r{i}", "d", "invoice", "other", {"invoice": 0.9}, None, {"x": 1}, float(i), "v2", 3.0)


@given(st.lists(st.tuples(st.floats(0, 300), st.sampled_from(LABELS), st.sampled_from(LABELS)), max_size=30))
def test_spotcheck_state_round_trips(offers: list[tuple[float, str, str]]) -> None:
    # The sampler's per-minute budget and the review queue are per replica (what each picks is policy);
    # a deployment merge adds the sampler's counters only, which test_deployment checks.
    sampler = SpotcheckSampler(max_per_minute=3, priority={"invoice": 2.0})
    queue = ReviewQueue(size=5)
    for i, (ts, live, canary) in enumerate(sorted(offers)):
        if sampler.offer(ts, live, canary):
            queue.push(case(i))
    assert_round_trips(sampler, lambda s: s.offer(1e6, "invoice", "other"))
    assert_round_trips(queue, lambda q: q.push(case(99)))
    assert_round_trips(case(1), lambda c: setattr(c, "priority", 1.0))


# -- features -----------------------------------------------------------------------------------


def stats_of(rows: list[dict[str, Any]]) -> FeatureStats:
    stats = FeatureStats(LAYOUT)
    stats.update(rows, [{"invoice": (i % 5) / 4} for i in range(len(rows))])
    return stats


def test_layout_and_specs_round_trip() -> None:
    assert decode(encode(LAYOUT), FeatureLayout) == LAYOUT
    assert clone(LAYOUT) == LAYOUT and clone(LAYOUT) is not LAYOUT
    for spec in LAYOUT.columns.values():
        assert decode(encode(spec), ColumnSpec) == spec
    with pytest.raises(ValueError, match="edges must be finite"):
        decode({"name": "x", "kind": "numeric", "edges": [2.0, 1.0]}, ColumnSpec)
    with pytest.raises(ValueError, match="kind"):
        decode({"name": "x", "kind": "text"}, ColumnSpec)


@settings(deadline=None)
@given(feature_rows)
def test_feature_stats_round_trip(rows: list[dict[str, Any]]) -> None:
    stats = stats_of(rows)
    assert_round_trips(stats, lambda s: s.update([{"x": 1.0, "lang": "de"}], [None]))
    # the layout a decoder needs is stored with the state, the columns' specs are rebuilt from it
    restored = decode(encode(stats), FeatureStats)
    assert all(column.spec is restored.layout.columns[name] for name, column in restored.columns.items())
    copy = clone(stats)
    numeric = copy.columns["x"]
    assert isinstance(numeric, NumericColumn)
    numeric.counts[0] += 1
    assert stats.columns["x"] != numeric


@settings(deadline=None)
@given(feature_rows, feature_rows)
def test_feature_stats_merge_law(xs: list[dict[str, Any]], ys: list[dict[str, Any]]) -> None:
    merged = stats_of(xs)
    merged.merge(stats_of(ys))
    whole = FeatureStats(LAYOUT)
    scores = [{"invoice": (i % 5) / 4} for i in range(len(xs))] + [{"invoice": (i % 5) / 4} for i in range(len(ys))]
    whole.update(xs + ys, scores)
    for name in LAYOUT.columns:
        column, expected = merged.columns[name], whole.columns[name]
        if isinstance(column, CategoricalColumn) and column.pooled:
            # Past the cap of distinct categories, which ones are pooled depends on arrival order per side:
            # the totals still add up.
            assert column.observed == expected.observed and column.missing == expected.missing  # type: ignore[union-attr]
        else:
            assert column == expected
    assert merged.rows == whole.rows


@given(values, values)
def test_summary_round_trip_and_merge_law(xs: list[float], ys: list[float]) -> None:
    a, b = np.array(xs), np.array(ys)
    summary = Summary().update_many(a)
    assert_round_trips(summary, lambda s: s.update_many(np.array([1e7])))
    assert Summary().update_many(a).merge(Summary().update_many(b)) == Summary().update_many(np.concatenate([a, b]))


@given(feature_rows)
def test_feature_intake_round_trips(rows: list[dict[str, Any]]) -> None:
    intake = FeatureIntake(IntakeSettings(learn_from=1000, sample_every=1))
    for i, row in enumerate(rows):
        intake.pending["live" if i % 2 else "canary"].append(("live" if i % 2 else "canary", "v2", row, None,
                                                            "invoice", f"r{i}", float(i)))
    intake.flush(lambda role, key: None, lambda features, scores, times: None)  # no layout yet: rows are held
    assert_round_trips(intake, lambda i: setattr(i, "unbinned", i.unbinned + 1))
    row = SampleRow("invoice", "other", {"x": 1}, None)  # frozen: a value, nothing to change in a copy
    assert decode(encode(row), SampleRow) == row and clone(row) == row


# -- sequential tests: merge keeps the guarantee, not the sums of one stream -----------------------


bits = st.lists(st.booleans(), max_size=40)


@given(bits, bits)
def test_sequential_state_round_trips_and_merges_counts_exactly(xs: list[bool], ys: list[bool]) -> None:
    checks: list[Callable[[list[bool]], Any]] = [
        lambda b: BoundedMeanCS(0.0, 1.0).update_many([float(v) for v in b]),
        lambda b: RateBelow(0.2).update_many([float(v) for v in b]),
        lambda b: PairedAccuracy(0.02).update_many(b, [not v for v in b]),
        lambda b: PairedDifference(LABELS).update_many([LABELS[v] for v in b], ["other"] * len(b)),
    ]
    for build in checks:
        state = build(xs)
        assert_round_trips(state, lambda s: setattr(s, "alpha", 0.5))
        merged, whole = build(xs).merge(build(ys)), build(xs + ys)
        # Each replica centres its bets on its own running mean, so only the counts and totals of the
        # merged state equal those of one stream fed both (the guarantee holds either way: see the merge docs).
        assert np.array_equal(merged.sums.n, whole.sums.n)
        assert np.allclose(merged.sums.total, whole.sums.total)
    grid = BetGrid.geometric(0.1, 0.5, 3)
    assert decode(encode(grid), BetGrid) == grid
    state = MeanState.empty(-1.0, 1.0, (3,))
    assert decode(encode(state), MeanState) == state


@given(st.lists(st.tuples(st.sampled_from(LABELS), st.sampled_from(LABELS), st.booleans()), max_size=30))
def test_sequential_evidence_round_trips_with_what_waits(pairs: list[tuple[str, str, bool]]) -> None:
    evidence = SequentialEvidence(LABELS, EvidenceSettings())
    for canary, live, right in pairs:
        evidence.add_pair(canary, live)
        evidence.add_outcome(right, not right)
    # answers still buffered are state too: encoding keeps them and never flushes
    assert_round_trips(evidence, lambda e: e.add_pair("invoice", "other"))
    evidence.flush()
    assert_round_trips(evidence, lambda e: e.add_outcome(True, False))
    assert decode(encode(EvidenceSettings(alpha=0.1)), EvidenceSettings) == EvidenceSettings(alpha=0.1)


# -- a comparison and a deployment ------------------------------------------------------------------


def comparison_of(pairs: list[tuple[str, str]]) -> Comparison:
    comparison = Comparison("v2", started_at=0.0)
    for live, canary in pairs:
        comparison.live.update(live)
        comparison.canary.update(canary)
        comparison.confusion.setdefault(live, {})
        comparison.confusion[live][canary] = comparison.confusion[live].get(canary, 0) + 1
    return comparison


label_pairs = st.lists(st.tuples(st.sampled_from(LABELS), st.sampled_from(LABELS)), max_size=30)


@given(label_pairs, label_pairs)
def test_comparison_round_trip_and_merge_law(xs: list[tuple[str, str]], ys: list[tuple[str, str]]) -> None:
    comparison = comparison_of(xs)
    comparison.features["live"] = stats_of([{"x": 1.0, "lang": "de"}])
    assert_round_trips(comparison, lambda c: c.live.update("invoice"))
    assert comparison_of(xs).merge(comparison_of(ys)) == comparison_of(xs + ys)


def deployment_of(events: list[tuple[int, str, str, float]]) -> DeploymentState:
    state = DeploymentState.new("d", window_s=60.0, windows_kept=1000,
                                evidence=EvidenceSettings(),
                                intake=FeatureIntake(IntakeSettings(sample_every=1, learn_from=4)))
    for i, role, label, ts in events:
        features = {"x": float(i), "lang": "de" if i % 2 else "en"}
        state.add_prediction(role, Prediction(f"r{i}", "d", label, ts, "v2", {label: 0.5}, features))
        if i % 3 == 0:
            state.add_feedback(Feedback(f"r{i}", "d", ts + 1, label, None, "user"))
    state.tick()
    return state


@settings(deadline=None, max_examples=50)
@given(requests)
def test_deployment_state_round_trip(events: list[tuple[int, str, str, float]]) -> None:
    # (the merge law of a whole deployment is test_deployment's test_merge_of_disjoint_streams_equals_the_whole)
    state = deployment_of(events)
    assert_round_trips(state, lambda s: s.add_prediction("live", Prediction("new", "d", "invoice", 1.0, "v1")))
    restored = decode(encode(state), DeploymentState)
    assert (restored.current is None) == (state.current is None)
    assert restored.comparisons.keys() == state.comparisons.keys()
