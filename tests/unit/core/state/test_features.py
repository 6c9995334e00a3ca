"""Tests of monitor.core.state.features and feature_intake: oracles, merge law, quality counts, checkpoints."""

from __future__ import annotations

import doctest
import zlib
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import monitor.core.state.features
from monitor.core.events import Prediction
from monitor.core.state.codec import decode, encode
from monitor.core.state.deployment import DeploymentState
from monitor.core.state.feature_intake import FeatureIntake, IntakeSettings
from monitor.core.state.features import OTHER, ColumnSpec, FeatureLayout, FeatureStats
from monitor.core.stats.drift import bin_counts, quantile_edges


def test_doctests() -> None:
    assert doctest.testmod(monitor.core.state.features).failed == 0


def reference_rows(n: int = 2000, seed: int = 1) -> tuple[list[dict[str, Any]], list[dict[str, float]]]:
    rng = np.random.default_rng(seed)
    features = [{"pages": int(p), "lang": str(lang), "length": float(x)}
                for p, lang, x in zip(rng.integers(1, 30, n), rng.choice(["de", "en", "fr"], n),
                                      rng.normal(1500, 300, n), strict=True)]
    scores = [{"invoice": float(s), "other": float(1 - s)} for s in rng.uniform(0, 1, n)]
    return features, scores


def test_layout_is_learned_per_column_and_round_trips() -> None:
    features, scores = reference_rows()
    layout = FeatureLayout.learn(features, scores, bins=10)
    kinds = {name: spec.kind for name, spec in layout.columns.items()}
    assert kinds == {"lang": "categorical", "length": "numeric", "pages": "numeric",
                     "scores.invoice": "numeric", "scores.other": "numeric"}
    length = np.array([row["length"] for row in features])
    assert layout.columns["length"].edges == tuple(quantile_edges(length, 10).tolist())
    assert layout.columns["lang"].categories == ("de", "en", "fr")
    assert decode(encode(layout), FeatureLayout) == layout


def test_numeric_column_equals_numpy_on_the_same_values() -> None:
    features, scores = reference_rows()
    layout = FeatureLayout.learn(features, scores, bins=10)
    stats = FeatureStats(layout)
    current, current_scores = reference_rows(3000, seed=2)
    for start in range(0, 3000, 700):  # in uneven batches
        stats.update(current[start:start + 700], current_scores[start:start + 700])
    length = np.array([row["length"] for row in current])
    column = stats.columns["length"]
    assert column.counts.tolist() == bin_counts(layout.columns["length"].edge_array, length).tolist()
    assert column.summary.count == 3000
    assert column.summary.mean == pytest.approx(length.mean(), rel=1e-12)
    assert column.summary.std == pytest.approx(length.std(), rel=1e-9)
    low, high = layout.columns["length"].edges[0], layout.columns["length"].edges[-1]
    assert column.out_of_range == int(np.count_nonzero((length < low) | (length > high)))


def test_quality_counts_missing_type_changes_unseen_and_pooled() -> None:
    spec_num = ColumnSpec("x", "numeric", edges=(0.0, 1.0, 2.0))
    spec_cat = ColumnSpec("c", "categorical", categories=("a", "b"), max_categories=3)
    stats = FeatureStats(FeatureLayout({"x": spec_num, "c": spec_cat}))
    rows = [{"x": 0.5, "c": "a"}, {"x": None, "c": None}, {"x": "text", "c": 7}, {"c": "new"},
            {"x": 5.0, "c": "newer"}, None]
    stats.update(rows, [None] * len(rows))
    x, c = stats.columns["x"], stats.columns["c"]
    assert (x.summary.count, x.summary.missing, x.type_changes, x.out_of_range) == (2, 3, 1, 1)
    # 7 is a number in a text column (a type change, counted as "7"); "7", "new" and "newer" are unseen;
    # the cap of 3 distinct categories pools "newer".
    assert (c.missing, c.type_changes, c.unseen, c.pooled) == (2, 1, 3, 1)
    assert c.counts == {"a": 1, "7": 1, "new": 1, OTHER: 1}


values = st.one_of(st.none(), st.integers(-50, 50), st.floats(-100, 100, allow_nan=False),
                   st.sampled_from(["a", "b", "zz"]))
rows_strategy = st.lists(st.fixed_dictionaries({}, optional={"x": values, "c": values}), max_size=60)


@settings(deadline=None, max_examples=150)
@given(rows_strategy, rows_strategy)
def test_merging_two_states_equals_the_state_of_the_union(first: list[dict[str, Any]],
                                                          second: list[dict[str, Any]]) -> None:
    layout = FeatureLayout({"x": ColumnSpec("x", "numeric", edges=(-10.0, 0.0, 10.0)),
                            "c": ColumnSpec("c", "categorical", categories=("a",), max_categories=100)})
    a, b, union = FeatureStats(layout), FeatureStats(layout), FeatureStats(layout)
    a.update(first, [None] * len(first))
    b.update(second, [None] * len(second))
    union.update(first + second, [None] * (len(first) + len(second)))
    assert encode(a.merge(b)) == encode(union)
    assert decode(encode(union), FeatureStats) == union


def rows_for(role: str, key: str | None, features: list[dict[str, Any]]) -> list[Any]:
    return [(role, key, row, None, "x", f"r{i}", 1000.0 + i) for i, row in enumerate(features)]


def test_intake_learns_from_the_first_live_rows_and_bins_what_it_held() -> None:
    features, _ = reference_rows(100)
    intake = FeatureIntake(IntakeSettings(bins=5, learn_from=40, sample_rows=10))
    targets: dict[tuple[str, str | None], FeatureStats] = {}

    def resolve(role: str, key: str | None) -> FeatureStats | None:
        assert intake.layout is not None
        return targets.setdefault((role, key), FeatureStats(intake.layout))

    intake.pending["live"].extend(rows_for("live", "v2", features[:30]))
    intake.pending["canary"].extend(rows_for("canary", "v2", features))
    unkeyed: list[int] = []
    intake.flush(resolve, lambda features, scores, times: unkeyed.append(len(times)))
    # waiting for 40 live rows: at most 2 * learn_from rows of a role are held, the rest counted
    assert intake.layout is None and intake.held_rows == 30 + 80 and intake.unbinned == 20 and not targets
    intake.pending["live"].extend(rows_for("live", "v2", features[30:100]))
    intake.flush(resolve, lambda features, scores, times: unkeyed.append(len(times)))
    assert not unkeyed  # every row came with its comparison
    assert intake.layout is not None and intake.held_rows == 0
    expected = FeatureLayout.learn(features[:40], [None] * 40, bins=5)
    assert intake.layout == expected
    assert targets[("live", "v2")].rows == 100 and targets[("canary", "v2")].rows == 80
    # the report sample takes the last sample_rows // 8 rows of each chunk: 1 + 1 of the two live chunks
    assert [row.features for row in intake.sample("live")] == [features[29], features[99]]


def test_deployment_state_bins_features_per_comparison_and_round_trips() -> None:
    features, scores = reference_rows(600)
    layout = FeatureLayout.learn(features, scores, bins=8)
    state = DeploymentState.new("d", intake=FeatureIntake(IntakeSettings(sample_every=1), layout))
    for i, (row, score) in enumerate(zip(features, scores, strict=True)):
        for role, version in (("live", "v1"), ("canary", "v2")):
            state.add_prediction(role, Prediction(f"r{i}", "d", "invoice", 1000.0 + i, version, score, row))
        if i % 100 == 0:
            state.tick()
    state.flush_features()  # tick() bins once enough rows wait; readers flush first
    comparison = state.current
    assert comparison is not None
    # the first live answer came before the canary's first: it is placed in the comparison by its event time
    assert comparison.features["canary"].rows == 600 and comparison.features["live"].rows == 600
    restored = decode(encode(state), DeploymentState)
    restored.use_features(FeatureIntake(IntakeSettings(sample_every=1), layout), None)
    assert encode(restored) == encode(state)


def test_sampling_bins_one_prediction_in_n() -> None:
    features, _ = reference_rows(400)
    layout = FeatureLayout.learn(features, [None] * 400, bins=8)
    state = DeploymentState.new("d", intake=FeatureIntake(IntakeSettings(sample_every=4), layout))
    for i, row in enumerate(features):
        state.add_prediction("canary", Prediction(f"r{i}", "d", "invoice", 1000.0 + i, "v2", None, row))
    state.flush_features()
    # by a hash of the request id: the same requests whatever the order they come in
    expected = sum(1 for i in range(400) if zlib.crc32(f"r{i}".encode()) % 4 == 0)
    assert 70 <= expected <= 130
    assert state.current is not None and state.current.features["canary"].rows == expected


def test_live_rows_read_before_the_canary_count_in_its_comparison() -> None:
    """A backlog read live topic first: the live features still count in the comparison by event time."""
    features, scores = reference_rows(300)
    layout = FeatureLayout.learn(features, scores, bins=8)
    state = DeploymentState.new("d", window_s=60.0, intake=FeatureIntake(IntakeSettings(sample_every=1), layout))
    for i, row in enumerate(features):
        state.add_prediction("live", Prediction(f"r{i}", "d", "invoice", 1000.0 + i, "v1", scores[i], row))
    state.flush_features()
    for i, row in enumerate(features):
        state.add_prediction("canary", Prediction(f"r{i}", "d", "invoice", 1000.0 + i, "v2", scores[i], row))
    state.flush_features()
    comparison = state.current
    assert comparison is not None
    live = comparison.features["live"]
    # live rows from the start of the window of the canary's first answer (960 s) on
    assert live.rows == 300 and encode(live)["columns"] == encode(comparison.features["canary"])["columns"]
    restored = decode(encode(state), DeploymentState)
    restored.use_features(FeatureIntake(IntakeSettings(sample_every=1), layout), None)
    assert encode(restored) == encode(state)


def test_equal_numbers_of_other_types_are_counted_by_their_own_text() -> None:
    # 0, 0.0 and False are one key to a dict; a categorical column counts each by its text,
    # so one batch of them counts as two batches of one each do (the merge law's case).
    layout = FeatureLayout({"c": ColumnSpec("c", "categorical", categories=("a",), max_categories=100)})
    whole, first, second = FeatureStats(layout), FeatureStats(layout), FeatureStats(layout)
    whole.update([{"c": 0}, {"c": 0.0}, {"c": False}], [None] * 3)
    first.update([{"c": 0}], [None])
    second.update([{"c": 0.0}, {"c": False}], [None] * 2)
    assert encode(whole)["columns"]["c"]["counts"] == {"0": 1, "0.0": 1, "False": 1}
    assert encode(first.merge(second)) == encode(whole)
