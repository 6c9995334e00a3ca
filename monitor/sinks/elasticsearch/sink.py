"""The Elasticsearch sink: closed windows, verdict changes and spot-check cases, indexed in bulk.

It never slows the consumer. The consumer's thread only hands verdicts, picked cases and
copies of the windows that closed in a batch (:meth:`ElasticsearchSink.on_batch`, a look
at the kept windows' counters) over to a bounded in-memory queue; when that is full they
go straight to the on-disk spool. The sink's own thread does the rest:

1. builds the documents and moves them into the spool (:mod:`monitor.sinks.elasticsearch.spool`, SQLite), so
   a document survives an outage of Elasticsearch and a restart of the sidecar;
2. installs the index templates once, then sends the spool's oldest documents in bulk
   requests of ``batch_size`` (at least every ``flush_interval_s``), and takes out what
   Elasticsearch acknowledged.

Windows are looked at after every batch, not from time to time, so a window the state
lets go (it keeps ``windows_kept``) has always been handed over first, however fast a
backlog is read.

A failed bulk request (Elasticsearch away, 429, 5xx) leaves the documents in the spool
and waits before the next attempt: ``backoff_s``, doubled per failure up to
``max_backoff_s``, with full jitter (tenacity's ``wait_random_exponential``). A 429 or 5xx
answer to the whole request that carries ``Retry-After`` (seconds or an HTTP-date, as a proxy
or a cloud front may send) is waited for instead when that is longer, up to ``max_backoff_s``,
read as the webhooks read it (:mod:`monitor.sinks.retry`); documents a bulk answer asks to
retry one by one (item status 429 or 5xx, no header) wait the jittered back-off alone. A document
Elasticsearch refuses for itself (a 4xx other than 429: a mapping conflict) would be refused
again, so it is counted as ``rejected``, logged and taken out. A bulk request refused as too large (413, from the
cluster's or a proxy's body limit) is sent again in halves, down to one document, which
is then rejected the same way; the batch grows back after each success. Document ids are deterministic
(:mod:`monitor.sinks.elasticsearch.documents`), and documents are written with the ``index``
operation, so whatever is sent twice is there once.

Counters, for ``/metrics``: ``driftgate_elasticsearch_documents_total{deployment, kind,
outcome}`` (``indexed``, ``rejected``, ``dropped``) and
``driftgate_elasticsearch_spool_documents{deployment, kind}``.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from elasticsearch import ApiError, Elasticsearch, TransportError
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from tenacity import RetryCallState, Retrying, wait_random_exponential

from monitor.config import ElasticsearchSettings, Settings
from monitor.core.state.deployment import DeploymentState
from monitor.core.state.spotcheck import SpotcheckCase
from monitor.core.verdict import Verdict
from monitor.sinks.elasticsearch.documents import (
    KINDS,
    Document,
    WindowReport,
    closed_windows,
    index_templates,
    spotcheck_document,
    verdict_document,
    window_documents,
)
from monitor.sinks.elasticsearch.spool import SPOOL_FILE, DocumentSpool, Spooled
from monitor.sinks.retry import honour_retry_after, retry_after_s, retryable

log = logging.getLogger(__name__)

OUTCOMES = ("indexed", "rejected", "dropped")
MAX_MARKS = 10_000  # windows remembered as sent, per deployment
Item = Verdict | SpotcheckCase | WindowReport


def open_client(settings: ElasticsearchSettings) -> Elasticsearch:
    """The official client for the configured cluster; retries are the sink's, not the client's."""
    options: dict[str, Any] = {"request_timeout": settings.request_timeout_s, "max_retries": 0}
    if settings.api_key:
        options["api_key"] = settings.api_key
    elif settings.username:
        options["basic_auth"] = (settings.username, settings.password or "")
    if settings.ca_certs is not None:
        options["ca_certs"] = str(settings.ca_certs)
    return Elasticsearch(settings.hosts, **options)


def asked_wait(error: Exception | None) -> float | None:
    """The wait a failed request's answer asked for: its ``Retry-After``, on a 429 or 5xx; else None.

    The client raises an ``ApiError`` for any answer it does not take (a 429 or 503 too), and the
    answer's headers are on its ``meta``; a connection error (``TransportError``) has no answer.
    """
    if isinstance(error, ApiError) and retryable(error.meta.status):
        return retry_after_s(error.meta.headers)
    return None


def spool_path(settings: Settings) -> Path:
    """Where the spool lives: ``elasticsearch.spool_dir``, else ``state.dir``."""
    assert settings.elasticsearch is not None
    return (settings.elasticsearch.spool_dir or settings.state.dir) / SPOOL_FILE


class ElasticsearchSink:
    """Indexes the sidecar's windows, verdict changes and spot-check cases from its own thread.

    Attach it to the sidecar (``sidecar.attach(sink)``): the sidecar starts it, tells it of
    verdict changes, picked cases and batches, and stops it after its own last verdicts, so
    those go out too.
    """

    def __init__(
        self,
        settings: ElasticsearchSettings,
        spool: DocumentSpool,
        deployments: Sequence[str],
        references: Mapping[str, Mapping[str, float] | None] | None = None,
        client: Elasticsearch | None = None,
    ) -> None:
        self.settings = settings
        self.spool = spool
        self.deployments = list(deployments)
        self.references = dict(references or {})
        self._client = client
        self._batch_limit = settings.batch_size  # halved after a 413, doubled back after a success
        self._handoff: queue.Queue[Item] = queue.Queue(settings.handoff_size)
        self._counts: dict[tuple[str, str, str], int] = {
            (deployment, kind, outcome): 0 for deployment in deployments for kind in KINDS for outcome in OUTCOMES
        }
        self._counts_lock = threading.Lock()
        self._queued = self._stored = 0  # items put on the hand-off, and taken from it into the spool
        # windows handed over: deployment -> start -> signature (read and written by on_batch only)
        self._marks = spool.window_marks()
        self._watermarks: dict[str, float] = {}
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._deadline = float("inf")
        self._failures = 0
        self._retry_at = 0.0
        # The sink's thread retries from its own loop (it goes on spooling what is handed over while it
        # waits), so it takes from tenacity only the wait: full jitter, uniform up to
        # backoff_s * 2**(failures-1), never over max_backoff_s (or a longer Retry-After, see _failed).
        # _outage is the call state that wait reads.
        self._backoff = wait_random_exponential(multiplier=settings.backoff_s, max=settings.max_backoff_s)
        self._outage = RetryCallState(Retrying(wait=self._backoff), None, (), {})
        self._templates_installed = False
        self.thread = threading.Thread(target=self._run, name="driftgate-elasticsearch", daemon=True)

    # -- called from the consumer's thread: never blocks on the network --------------------------------

    def notify(self, verdict: Verdict) -> None:
        """A verdict changed (a sidecar listener; the sidecar logs what a listener raises)."""
        self._hand_over([verdict])

    __call__ = notify

    def add_cases(self, cases: list[SpotcheckCase]) -> None:
        """Disagreements were picked for review (never raises, like notify)."""
        try:
            self._hand_over(cases)
        except Exception:
            log.exception("cannot hand spot-check cases over to the Elasticsearch sink")

    def on_batch(self, states: Mapping[str, DeploymentState]) -> None:
        """After a batch, where the states may be read: hand over copies of the windows that closed.

        Hot path, on purpose short: a deployment whose watermark did not move is skipped, and
        otherwise only the kept windows' counters are compared with what was handed over.
        Never raises: a fault here must not stop the batch from being committed.
        """
        try:
            self._hand_over_windows(states)
        except Exception:
            log.exception("cannot hand closed windows over to the Elasticsearch sink")

    def _hand_over_windows(self, states: Mapping[str, DeploymentState]) -> None:
        for name, state in states.items():
            if self._watermarks.get(name) == state.watermark:
                continue
            self._watermarks[name] = state.watermark
            marks = self._marks.setdefault(name, {})
            reports = closed_windows(state, self.references.get(name), marks)
            if not reports:
                continue
            for report in reports:
                marks[report.window.start] = report.signature
            if len(marks) > MAX_MARKS:  # the oldest are of windows let go long ago: they never change again
                for start in sorted(marks)[: len(marks) - MAX_MARKS]:
                    del marks[start]
            self._hand_over(reports)

    def _hand_over(self, items: Sequence[Item]) -> None:
        spill: list[Item] = []
        for item in items:
            try:
                self._handoff.put_nowait(item)
            except queue.Full:
                spill.append(item)
            else:
                with self._counts_lock:
                    self._queued += 1
        if spill:
            # The sink's thread is behind (a slow cluster): straight to disk, never wait for it.
            self._store(spill)

    # -- life cycle ------------------------------------------------------------------------------------

    def start(self) -> None:
        self.thread.start()

    def collectors(self) -> list[Collector]:
        return [SinkCollector(self)]

    def stop(self, timeout_s: float = 10.0) -> None:
        """Spool what was handed over, send what can be sent within ``timeout_s``; the rest waits on disk."""
        self._deadline = time.monotonic() + timeout_s
        self._stopping.set()
        self._wake.set()
        self.thread.join(timeout_s + 1.0)
        left = len(self.spool)
        if left:
            log.warning("Elasticsearch documents left in the spool; they are sent at the next start",
                        extra={"waiting": left, "spool": str(self.spool.path)})
        if not self.thread.is_alive():
            self.spool.close()

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything handed over is indexed (for tests and the demo); whether it was."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._counts_lock:
                taken = self._queued == self._stored
            if taken and not len(self.spool):
                return True
            self._wake.set()
            time.sleep(0.05)
        return False

    # -- counters --------------------------------------------------------------------------------------

    def counts(self) -> dict[tuple[str, str, str], int]:
        """(deployment, kind, outcome) -> documents since start."""
        with self._counts_lock:
            return dict(self._counts)

    def _count(self, deployment: str, kind: str, outcome: str, n: int = 1) -> None:
        with self._counts_lock:
            key = (deployment, kind, outcome)
            self._counts[key] = self._counts.get(key, 0) + n

    # -- the sink's thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            stopping = self._stopping.is_set()
            try:
                self._drain_handoff()
                if time.monotonic() >= self._retry_at or stopping:
                    self._send()
            except Exception:  # a bug must not end the sink: log it, try again at the next round
                log.exception("Elasticsearch sink round failed")
            if stopping:
                return
            self._wake.wait(self._pause())
            self._wake.clear()

    def _pause(self) -> float:
        until_retry = self._retry_at - time.monotonic()
        return max(0.05, min(self.settings.flush_interval_s, until_retry if until_retry > 0 else 0.2))

    def _drain_handoff(self) -> None:
        items: list[Item] = []
        while True:
            try:
                items.append(self._handoff.get_nowait())
            except queue.Empty:
                break
        try:
            self._store(items)
        finally:
            with self._counts_lock:
                self._stored += len(items)

    def _store(self, items: Sequence[Item]) -> None:
        """Build the documents of what was handed over, spool them, and remember the windows sent."""
        prefix, replica, now = self.settings.index_prefix, self.settings.replica, time.time()
        documents: list[Document] = []
        windows: dict[str, dict[float, str]] = {}
        for item in items:
            if isinstance(item, Verdict):
                documents.append(verdict_document(item.to_dict(), prefix, now))
            elif isinstance(item, SpotcheckCase):
                documents.append(spotcheck_document(item, prefix))
            else:
                documents.extend(window_documents(item, prefix, replica))
                windows.setdefault(item.deployment, {})[item.window.start] = item.signature
        self._spool(documents)
        for deployment, marks in windows.items():
            # Forget marks older than MAX_MARKS windows before the newest: as on_batch does in memory.
            keep_from = max(marks) - MAX_MARKS * _window_length(items, deployment)
            try:
                self.spool.mark_windows(deployment, marks, keep_from)
            except (sqlite3.Error, OSError):  # harmless: those windows are sent again after a restart
                log.warning("cannot remember the windows sent", exc_info=True)

    def _spool(self, documents: list[Document]) -> None:
        try:
            dropped = self.spool.put(documents)
            reason = "Elasticsearch spool full: oldest documents dropped"
        except (sqlite3.Error, OSError) as error:  # a full or broken disk: what could not be kept is counted
            log.error("cannot write to the Elasticsearch spool", extra={"error": str(error),
                                                                        "spool": str(self.spool.path)})
            dropped, reason = documents, "documents not kept: the spool cannot be written"
        by_key: dict[tuple[str, str], int] = {}
        for document in dropped:
            by_key[(document.deployment, document.kind)] = by_key.get((document.deployment, document.kind), 0) + 1
        for (deployment, kind), n in by_key.items():
            self._count(deployment, kind, "dropped", n)
            log.warning(reason, extra={"deployment": deployment, "kind": kind, "dropped": n,
                                       "spool_max_documents": self.spool.max_documents})

    def _send(self) -> None:
        """Send the spool in bulk requests until it is empty, a request fails or the deadline is over."""
        client = self._client or open_client(self.settings)
        self._client = client
        if not self._templates_installed and not self._install_templates(client):
            return
        while time.monotonic() < self._deadline:
            batch = self.spool.peek(self._batch_limit)
            if not batch or not self._bulk(client, batch):
                return

    def _install_templates(self, client: Elasticsearch) -> bool:
        try:
            for name, body in index_templates(self.settings.index_prefix, self.settings.ilm_policy).items():
                client.indices.put_index_template(name=name, **body)
        except (TransportError, ApiError) as error:
            self._failed("cannot install the index templates", error)
            return False
        self._templates_installed = True
        return True

    def _bulk(self, client: Elasticsearch, batch: list[Spooled]) -> bool:
        """One bulk request; whether it went through (retryable items stay in the spool)."""
        operations: list[dict[str, Any]] = []
        for item in batch:
            document = item.document
            operations.append({"index": {"_index": document.index, "_id": document.doc_id}})
            operations.append(document.body)
        try:
            response = client.bulk(operations=operations)
        except ApiError as error:
            if error.status_code == 413:
                return self._too_large(batch)
            self._failed("bulk request failed", error)
            return False
        except TransportError as error:
            self._failed("bulk request failed", error)
            return False
        self._batch_limit = min(self.settings.batch_size, self._batch_limit * 2)
        done, retry = self._settle(batch, response.body.get("items", []))
        self.spool.remove(done)
        if retry:
            self._failed("Elasticsearch asked to retry some documents", None, retry)
            return False
        if self._failures:
            log.info("Elasticsearch reachable again", extra={"failures": self._failures, "waiting": len(self.spool)})
        self._failures, self._retry_at = 0, 0.0
        return True

    def _too_large(self, batch: list[Spooled]) -> bool:
        """A 413: send half as many next; a single document that is too large is refused for good."""
        if len(batch) > 1:
            self._batch_limit = max(1, len(batch) // 2)
            log.info("bulk request too large for Elasticsearch: sending smaller ones",
                     extra={"documents": len(batch), "next": self._batch_limit})
            return True
        document = batch[0].document
        self._count(document.deployment, document.kind, "rejected")
        log.error("Elasticsearch refused a document as too large",
                  extra={"deployment": document.deployment, "kind": document.kind, "index": document.index,
                         "id": document.doc_id, "status": 413})
        self.spool.remove(batch)
        return True

    def _settle(self, batch: list[Spooled], items: list[dict[str, Any]]) -> tuple[list[Spooled], int]:
        """Sort a bulk answer: indexed and refused documents are done; 429 and 5xx are retried."""
        done: list[Spooled] = []
        retry = 0
        for item, answer in zip(batch, items, strict=False):
            result: dict[str, Any] = next(iter(answer.values()), {})
            status = int(result.get("status", 500))
            document = item.document
            if 200 <= status < 300:
                self._count(document.deployment, document.kind, "indexed")
                done.append(item)
            elif status == 429 or status >= 500:
                retry += 1
            else:
                self._count(document.deployment, document.kind, "rejected")
                log.error(
                    "Elasticsearch refused a document",
                    extra={"deployment": document.deployment, "kind": document.kind, "index": document.index,
                           "id": document.doc_id, "status": status, "error": result.get("error")},
                )
                done.append(item)
        return done, retry + max(0, len(batch) - len(items))

    def _failed(self, message: str, error: Exception | None, documents: int = 0) -> None:
        self._failures += 1
        self._outage.attempt_number = self._failures
        delay = honour_retry_after(self._backoff(self._outage), asked_wait(error), self.settings.max_backoff_s)
        self._retry_at = time.monotonic() + delay
        # The first failure of an outage at warning, the rest at debug: an outage is not a log flood.
        level = logging.WARNING if self._failures == 1 else logging.DEBUG
        log.log(level, message, extra={"error": _describe(error), "documents": documents,
                                       "waiting": len(self.spool), "retry_in_s": round(delay, 2)})


def _describe(error: Exception | None) -> str | None:
    if error is None:
        return None
    # The type and status only: a message may carry a URL with credentials in it.
    status = getattr(error, "status_code", None) or getattr(error, "status", None)
    return f"{type(error).__name__}{f' {status}' if isinstance(status, int) else ''}"


class SinkCollector(Collector):
    """The sink's counters for /metrics, read at scrape time."""

    def __init__(self, sink: ElasticsearchSink) -> None:
        self.sink = sink

    def collect(self) -> Iterator[Metric]:
        documents = CounterMetricFamily(
            "driftgate_elasticsearch_documents",
            "Documents for Elasticsearch by outcome: indexed, rejected (refused by Elasticsearch), "
            "dropped (spool full).",
            labels=["deployment", "kind", "outcome"],
        )
        for (deployment, kind, outcome), n in sorted(self.sink.counts().items()):
            documents.add_metric([deployment, kind, outcome], n)
        waiting = GaugeMetricFamily(
            "driftgate_elasticsearch_spool_documents", "Documents waiting on disk for Elasticsearch.",
            labels=["deployment", "kind"],
        )
        spooled = self.sink.spool.waiting()
        for deployment in self.sink.deployments:
            for kind in KINDS:
                waiting.add_metric([deployment, kind], spooled.get((deployment, kind), 0))
        yield documents
        yield waiting


def open_sink(settings: Settings) -> ElasticsearchSink:
    """A sink for the configured cluster, its spool opened (not started)."""
    assert settings.elasticsearch is not None
    spool = DocumentSpool(spool_path(settings), settings.elasticsearch.spool_max_documents)
    references = {d.name: d.reference.class_distribution for d in settings.deployments}
    # The client is made here, not in the sink's thread, so a setting it cannot use stops the start.
    return ElasticsearchSink(
        settings.elasticsearch, spool, [d.name for d in settings.deployments], references,
        client=open_client(settings.elasticsearch),
    )


def _window_length(items: Sequence[Item], deployment: str) -> float:
    return next(item.length_s for item in items if isinstance(item, WindowReport) and item.deployment == deployment)
