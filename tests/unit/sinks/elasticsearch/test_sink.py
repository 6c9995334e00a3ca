"""The sink's decisions without a server: back-off bounds and how a bulk answer is sorted."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig
from elasticsearch import ApiError, ConnectionError
from hypothesis import given
from hypothesis import strategies as st

from monitor.config import ElasticsearchSettings
from monitor.core.events import Prediction
from monitor.core.state.deployment import DeploymentState
from monitor.sinks.elasticsearch.documents import Document
from monitor.sinks.elasticsearch.sink import ElasticsearchSink, asked_wait
from monitor.sinks.elasticsearch.spool import DocumentSpool


@pytest.fixture(scope="module")
def shared_spool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocumentSpool]:
    """One spool for every example of a property (the back-off never touches its documents)."""
    spool = DocumentSpool(tmp_path_factory.mktemp("backoff") / "s.sqlite", 100)
    yield spool
    spool.close()


def retry_in(sink: ElasticsearchSink, failures: int) -> tuple[float, float]:
    """After the failures-th failure in a row: the bounds of the wait the sink chose (it keeps a time)."""
    sink._failures = failures - 1
    before = time.monotonic()
    sink._failed("bulk request failed", None)
    after = time.monotonic()
    return sink._retry_at - after, sink._retry_at - before


@given(failures=st.integers(min_value=1, max_value=200), base=st.floats(0.01, 5), cap=st.floats(0.01, 120))
def test_backoff_is_jittered_below_the_doubled_base_and_the_cap(shared_spool: DocumentSpool, failures: int,
                                                                 base: float, cap: float) -> None:
    sink = ElasticsearchSink(ElasticsearchSettings(backoff_s=base, max_backoff_s=cap), shared_spool, ["d"])
    shortest, longest = retry_in(sink, failures)
    assert longest >= 0.0 and shortest <= min(cap, base * 2 ** (failures - 1)) + 1e-6


def test_backoff_jitter_spans_the_whole_range(shared_spool: DocumentSpool) -> None:
    sink = ElasticsearchSink(ElasticsearchSettings(backoff_s=0.5, max_backoff_s=60.0), shared_spool, ["d"])
    waits = [retry_in(sink, 4)[1] for _ in range(200)]  # ceiling 0.5 * 2**3 = 4 s
    assert min(waits) < 4.0 * 0.2 and max(waits) > 4.0 * 0.8  # full jitter, not a sliver near the ceiling


def api_error(status: int, **headers: str) -> ApiError:
    """What the client raises for an answer it does not take: the answer's headers are on its meta."""
    meta = ApiResponseMeta(status, "1.1", HttpHeaders(headers), 0.01, NodeConfig("http", "localhost", 9200))
    return ApiError("es_rejected_execution_exception", meta, {})


@pytest.mark.parametrize(("error", "asked"), [
    (api_error(429, **{"Retry-After": "7"}), 7.0),
    (api_error(503, **{"retry-after": "12"}), 12.0),
    (api_error(502, **{"Retry-After": "3"}), 3.0),
    (api_error(429), None),  # no header: the back-off alone
    (api_error(503, **{"Retry-After": "soon"}), None),
    (api_error(400, **{"Retry-After": "7"}), None),  # a final answer asks for nothing
    (api_error(403, **{"Retry-After": "7"}), None),
    (ConnectionError("connection refused"), None),  # no answer at all
    (None, None),  # documents a bulk answer asked to retry one by one
])
def test_the_wait_an_answer_asks_for(error: Exception | None, asked: float | None) -> None:
    assert asked_wait(error) == asked


def wait_after(sink: ElasticsearchSink, error: Exception | None, failures: int = 1) -> tuple[float, float]:
    sink._failures = failures - 1
    before = time.monotonic()
    sink._failed("bulk request failed", error)
    after = time.monotonic()
    return sink._retry_at - after, sink._retry_at - before


def test_a_429_or_503_with_retry_after_waits_that_long_up_to_the_cap(shared_spool: DocumentSpool) -> None:
    sink = ElasticsearchSink(ElasticsearchSettings(backoff_s=0.5, max_backoff_s=60.0), shared_spool, ["d"])
    shortest, longest = wait_after(sink, api_error(429, **{"Retry-After": "20"}))
    assert shortest <= 20.0 <= longest  # the back-off's ceiling is 0.5 s: the server's wait wins
    shortest, longest = wait_after(sink, api_error(503, **{"Retry-After": "600"}))
    assert shortest <= 60.0 <= longest  # never over max_backoff_s
    date = "Fri, 01 Jan 2100 00:00:00 GMT"  # an HTTP-date far ahead: capped the same way
    shortest, longest = wait_after(sink, api_error(503, **{"Retry-After": date}))
    assert shortest <= 60.0 <= longest


def test_a_shorter_or_missing_retry_after_leaves_the_jittered_back_off(shared_spool: DocumentSpool) -> None:
    sink = ElasticsearchSink(ElasticsearchSettings(backoff_s=0.5, max_backoff_s=60.0), shared_spool, ["d"])
    for error in (api_error(429), api_error(503, **{"Retry-After": "0"}), None):
        waits = [wait_after(sink, error, failures=4)[1] for _ in range(200)]  # ceiling 0.5 * 2**3 = 4 s
        assert all(w <= 4.0 + 0.01 for w in waits)
        assert min(waits) < 4.0 * 0.2 and max(waits) > 4.0 * 0.8
    # a Retry-After inside the back-off's range: the longer of the two, so never under what was asked
    waits = [wait_after(sink, api_error(429, **{"Retry-After": "1"}), failures=4) for _ in range(200)]
    assert all(longest >= 1.0 and shortest <= 4.0 for shortest, longest in waits)
    assert max(longest for _, longest in waits) > 4.0 * 0.8


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
    state = DeploymentState.new("d", classes=["a", "b"], window_s=10.0, windows_kept=3)
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
