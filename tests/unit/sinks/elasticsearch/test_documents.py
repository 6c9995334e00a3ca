"""The Elasticsearch documents, ids, indices and templates (pure: no server)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon

from monitor.core.events import Prediction
from monitor.core.state.deployment import DeploymentState
from monitor.core.state.spotcheck import SpotcheckCase
from monitor.sinks.elasticsearch.documents import (
    MAPPINGS,
    Document,
    closed_windows,
    document_id,
    index_name,
    index_templates,
    spotcheck_document,
    verdict_document,
    window_documents,
)

CLASSES = ["invoice", "contract", "other"]
DAY = datetime(2027, 1, 15, tzinfo=UTC).timestamp()


def feed(state: DeploymentState, n: int, start: float, rate: float, seed: int = 1) -> None:
    rng = random.Random(seed)
    for i in range(n):
        ts = start + i / rate
        live = rng.choice(CLASSES)
        canary = live if rng.random() < 0.7 else rng.choice(CLASSES)
        state.add_prediction("live", Prediction(f"r{seed}-{i}", "d", live, ts, "v1"))
        state.add_prediction("canary", Prediction(f"r{seed}-{i}", "d", canary, ts, "v2"))


def test_index_is_the_utc_day_of_the_event_time() -> None:
    assert index_name("dg", "window", DAY + 86_399.5) == "dg-windows-2027.01.15"
    assert index_name("dg", "verdict", DAY + 86_400) == "dg-verdicts-2027.01.16"
    assert index_name("dg", "spotcheck", DAY) == "dg-spotcheck-2027.01.15"


@given(st.lists(st.text(max_size=8), min_size=1, max_size=4), st.lists(st.text(max_size=8), min_size=1, max_size=4))
def test_ids_are_stable_and_tell_different_parts_apart(a: list[str], b: list[str]) -> None:
    assert document_id(*a) == document_id(*a)
    if a != b:
        assert document_id(*a) != document_id(*b)


def test_closed_windows_one_document_per_role_and_class_with_the_windows_counts() -> None:
    state = DeploymentState.new("d", classes=CLASSES, window_s=10.0)
    feed(state, 250, DAY, rate=10.0)  # 25 s: windows at 0 and 10 closed, 20 open
    reports = closed_windows(state, None, {})
    assert [r.window.start for r in reports] == [DAY, DAY + 10]
    documents = window_documents(reports[0], "dg")
    assert len(documents) == 2 * len(CLASSES)
    assert len({d.doc_id for d in documents}) == len(documents)
    window = state.windows.by_start[DAY]
    for role in ("live", "canary"):
        mine = [d.body for d in documents if d.body["role"] == role]
        assert {b["class"]: b["count"] for b in mine} == {c: window.live.get(c) if role == "live" else
                                                          window.canary.get(c) for c in CLASSES}
        assert sum(b["share"] for b in mine) == pytest.approx(1.0)
        assert all(b["total"] == 100 for b in mine)
    body = documents[0].body
    expected_js = jensenshannon(window.canary.vector(CLASSES), window.live.vector(CLASSES), base=2)
    assert body["divergence"]["js"] == pytest.approx(expected_js, abs=1e-9)
    assert body["pairs"] == 100 and body["disagreement_rate"] == window.disagreements / 100
    assert body["window"]["start"] == "2027-01-15T00:00:00.000Z"
    assert body["window"]["end"] == "2027-01-15T00:00:10.000Z"
    assert {d.index for d in documents} == {"dg-windows-2027.01.15"}


def test_a_window_sent_is_not_sent_again_unless_a_late_event_changes_it() -> None:
    state = DeploymentState.new("d", classes=CLASSES, window_s=10.0)
    feed(state, 250, DAY, rate=10.0)
    reports = closed_windows(state, None, {})
    sent = {r.window.start: r.signature for r in reports}
    assert closed_windows(state, None, sent) == []
    first_ids = {d.doc_id for d in window_documents(reports[0], "dg")}
    state.add_prediction("live", Prediction("late", "d", "invoice", DAY + 1.0, "v1"))
    again = closed_windows(state, None, sent)
    assert [r.window.start for r in again] == [DAY]
    documents = window_documents(again[0], "dg")
    assert {d.doc_id for d in documents} == first_ids  # overwrites, never adds
    assert next(d.body["total"] for d in documents if d.body["role"] == "live") == 101


def test_replicas_of_one_deployment_write_their_windows_under_their_own_ids() -> None:
    state = DeploymentState.new("d", classes=CLASSES, window_s=10.0)
    feed(state, 150, DAY, rate=10.0)
    report = closed_windows(state, None, {})[0]
    alone = {d.doc_id for d in window_documents(report, "dg")}
    first = window_documents(report, "dg", replica="a")
    second = {d.doc_id for d in window_documents(report, "dg", replica="b")}
    assert len(alone | {d.doc_id for d in first} | second) == 3 * len(alone)
    assert {d.body["replica"] for d in first} == {"a"}


def test_reference_divergence_per_role_when_a_reference_is_configured() -> None:
    state = DeploymentState.new("d", classes=CLASSES, window_s=10.0)
    feed(state, 150, DAY, rate=10.0)
    report = closed_windows(state, {"invoice": 0.5, "contract": 0.3, "other": 0.2}, {})[0]
    body = window_documents(report, "dg")[0].body
    assert 0.0 <= body["reference_divergence"]["js"] <= 1.0


def verdict(evaluated_at: str | None, name: str = "no_go") -> dict[str, Any]:
    return {
        "deployment": "d", "verdict": name, "reasons": ["canary collapsed"],
        "checks": [{"name": "collapse", "status": "fail", "value": 0.95, "threshold": 0.8, "detail": "x",
                    "blocking": True},
                   {"name": "disagreement", "status": "warn", "value": 0.3, "threshold": 0.2, "detail": "y",
                    "blocking": False, "evidence": {"e": 3.0}}],
        "samples": {"live": 500, "canary": 500, "feedback": 0, "spotcheck_labels": 0},
        "live_version": "v1", "canary_version": "v2", "evaluated_at": evaluated_at,
    }


def test_a_verdict_sent_twice_has_one_id_and_its_evaluation_day() -> None:
    first = verdict_document(verdict("2027-01-15T23:59:00.000Z"), "dg", published_at=DAY + 2 * 86_400)
    again = verdict_document(verdict("2027-01-15T23:59:00.000Z"), "dg", published_at=DAY + 3 * 86_400)
    assert (first.doc_id, first.index) == (again.doc_id, again.index) == (first.doc_id, "dg-verdicts-2027.01.15")
    assert verdict_document(verdict("2027-01-15T23:59:00.000Z", "go"), "dg", DAY).doc_id != first.doc_id
    assert verdict_document(verdict("2027-01-15T23:59:01.000Z"), "dg", DAY).doc_id != first.doc_id
    assert first.body["failed_checks"] == ["collapse"] and first.body["warned_checks"] == ["disagreement"]
    assert first.body["@timestamp"] == "2027-01-15T23:59:00.000Z"


def test_a_spotcheck_case_is_named_by_its_request() -> None:
    case = SpotcheckCase("r-1", "d", "invoice", "other", {"invoice": 0.8, "other": 0.2}, {"other": 0.6},
                         {"lang": "de"}, DAY + 5, "v2", 3.0)
    document = spotcheck_document(case, "dg")
    assert document.doc_id == spotcheck_document(case, "dg").doc_id
    assert document.doc_id != spotcheck_document(msgspec.structs.replace(case, request_id="r-2"), "dg").doc_id
    assert document.body["live_score"] == 0.8 and document.body["canary_score"] == 0.6


def _unmapped(body: dict[str, Any], properties: dict[str, Any], path: str = "") -> list[str]:
    missing = []
    for key, value in body.items():
        mapping = properties.get(key)
        if mapping is None:
            missing.append(path + key)
        elif mapping.get("enabled") is False:
            continue
        elif isinstance(value, dict):
            missing += _unmapped(value, mapping.get("properties", {}), f"{path}{key}.")
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for item in value:
                missing += _unmapped(item, mapping.get("properties", {}), f"{path}{key}.")
    return missing


def test_every_field_written_is_mapped_explicitly() -> None:
    state = DeploymentState.new("d", classes=CLASSES, window_s=10.0)
    feed(state, 150, DAY, rate=10.0)
    report = closed_windows(state, {"invoice": 0.5, "contract": 0.3, "other": 0.2}, {})[0]
    documents: list[Document] = [
        *window_documents(report, "dg", replica="a"),
        verdict_document(verdict("2027-01-15T10:00:00.000Z"), "dg", DAY),
        spotcheck_document(SpotcheckCase("r", "d", "a", "b", {"a": 1.0}, {"b": 1.0}, {"f": 1}, DAY), "dg"),
    ]
    for document in documents:
        assert _unmapped(document.body, MAPPINGS[document.kind]) == [], document.kind
    templates = index_templates("dg")
    assert sorted(t["index_patterns"][0] for t in templates.values()) == [
        "dg-spotcheck-*", "dg-verdicts-*", "dg-windows-*"]
