"""The sink's decisions without a server: back-off bounds and how a bulk answer is sorted."""

from __future__ import annotations

import random
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from monitor.config import ElasticsearchSettings
from monitor.core.events import Prediction
from monitor.core.state.deployment import DeploymentState
from monitor.sinks.elasticsearch.documents import Document
from monitor.sinks.elasticsearch.sink import ElasticsearchSink, backoff_delay
from monitor.sinks.elasticsearch.spool import DocumentSpool


@given(failures=st.integers(min_value=1, max_value=200), base=st.floats(0.01, 5), cap=st.floats(0.01, 120),
       seed=st.integers(0, 2**32))
def test_backoff_is_jittered_below_the_doubled_base_and_the_cap(failures: int, base: float, cap: float,
                                                                 seed: int) -> None:
    delay = backoff_delay(failures, base, cap, random.Random(seed))
    assert 0.0 <= delay <= min(cap, base * 2 ** (failures - 1))


def test_a_bulk_answer_is_sorted_into_indexed_retried_and_refused(tmp_path: Path) -> None:
    spool = DocumentSpool(tmp_path / "s.sqlite", 100)
    documents = [Document("window", "d", "p-windows-2027.01.15", f"w{i}", {"i": i}) for i in range(5)]
    spool.put(documents)
    sink = ElasticsearchSink(ElasticsearchSettings(), spool, ["d"])
    batch = spool.peek(5)
    answers = [
        {"index": {"status": 201}},
        {"index": {"status": 200}},
        {"index": {"status": 429}},
        {"index": {"status": 503}},
        {"index": {"status": 400, "error": {"type": "mapper_parsing_exception"}}},
    ]
    done, retry = sink._settle(batch, answers)
    assert [item.document.doc_id for item in done] == ["w0", "w1", "w4"]
    assert retry == 2
    counts = sink.counts()
    assert counts[("d", "window", "indexed")] == 2 and counts[("d", "window", "rejected")] == 1
    # an answer with fewer items than were sent: the missing ones are retried, never counted as done
    done, retry = sink._settle(batch, answers[:2])
    assert len(done) == 2 and retry == 3


def test_windows_are_handed_over_after_each_batch_once_even_when_the_state_lets_them_go(tmp_path: Path) -> None:
    spool = DocumentSpool(tmp_path / "s.sqlite", 10_000)
    sink = ElasticsearchSink(ElasticsearchSettings(), spool, ["d"])  # not started: the test drains by hand
    state = DeploymentState("d", classes=["a", "b"], window_s=10.0, windows_kept=3)
    for batch in range(20):  # each batch a window's worth of events; the state keeps only 3 windows
        for i in range(10):
            ts = 1_800_000_000.0 + batch * 10 + i
            state.add_prediction("live", Prediction(f"r{batch}-{i}", "d", "ab"[i % 2], ts, "v1"))
        sink.on_batch({"d": state})
        sink.on_batch({"d": state})  # nothing new: nothing handed over twice
    sink._drain_handoff()
    documents = [item.document for item in spool.peek(10_000)]
    starts = sorted({d.body["window"]["start"] for d in documents})
    assert len(starts) == 19  # every window but the open one, though only 3 were ever kept at once
    assert len(documents) == 19 * 2 * 2
    state.add_prediction("live", Prediction("late", "d", "a", 1_800_000_000.0 + 185, "v1"))
    sink.on_batch({"d": state})
    sink._drain_handoff()
    assert len(spool.peek(10_000)) == 19 * 2 * 2  # the changed window replaced its waiting documents
    assert sink.flush(0.1) is False  # nothing can be sent: no server, not started
