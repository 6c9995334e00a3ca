"""The Elasticsearch sink: closed windows, verdict changes and spot-check cases, indexed in bulk.

It never slows the consumer. The consumer's thread only hands verdicts and picked cases
over to a bounded in-memory queue (when that is full, they go straight to the on-disk
spool). The sink's own thread does the rest:

1. moves what was handed over into the spool (:mod:`monitor.spool`, SQLite), so a
   document survives an outage of Elasticsearch and a restart of the sidecar;
2. every ``flush_interval_s`` looks for windows that closed since it last looked (one
   short read of the state under the sidecar's lock) and spools their documents;
3. installs the index templates once, then sends the spool's oldest documents in bulk
   requests of ``batch_size``, and takes out what Elasticsearch acknowledged.

A failed bulk request (Elasticsearch away, 429, 5xx) leaves the documents in the spool
and waits before the next attempt: ``backoff_s``, doubled per failure up to
``max_backoff_s``, with full jitter. A document Elasticsearch refuses for itself (a 4xx
other than 429: a mapping conflict) would be refused again, so it is counted as
``rejected``, logged and taken out. Document ids are deterministic
(:mod:`monitor.elasticsearch_documents`), and documents are written with the ``index``
operation, so whatever is sent twice is there once.

Counters, for ``/metrics``: ``driftgate_elasticsearch_documents_total{deployment, kind,
outcome}`` (``indexed``, ``rejected``, ``dropped``) and
``driftgate_elasticsearch_spool_documents{deployment, kind}``.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from elasticsearch import ApiError, Elasticsearch, TransportError
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.config import ElasticsearchSettings, Settings
from monitor.elasticsearch_documents import (
    KINDS,
    Document,
    WindowReport,
    closed_windows,
    index_templates,
    spotcheck_document,
    verdict_document,
    window_documents,
)
from monitor.spool import SPOOL_FILE, DocumentSpool, Spooled
from monitor.state.deployment import DeploymentState
from monitor.state.spotcheck import SpotcheckCase
from monitor.verdict import Verdict

log = logging.getLogger(__name__)

OUTCOMES = ("indexed", "rejected", "dropped")
MAX_MARKS = 10_000  # windows remembered as sent, per deployment
# Reads the windows closed since the marks given (deployment -> start -> signature sent).
WindowReader = Callable[[Mapping[str, Mapping[float, str]]], list[WindowReport]]


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


def spool_path(settings: Settings) -> Path:
    """Where the spool lives: ``elasticsearch.spool_dir``, else ``state.dir``."""
    assert settings.elasticsearch is not None
    return (settings.elasticsearch.spool_dir or settings.state.dir) / SPOOL_FILE


def backoff_delay(failures: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Full jitter: uniform up to ``base_s * 2**(failures-1)``, never over ``cap_s``."""
    return rng.uniform(0.0, min(cap_s, base_s * 2 ** max(failures - 1, 0)))


class ElasticsearchSink:
    """Indexes the sidecar's windows, verdict changes and spot-check cases from its own thread.

    Wire it as a verdict listener (``sidecar.listeners``) and a case listener
    (``sidecar.case_listeners``), give it a window reader, :meth:`start` it, and
    :meth:`stop` it after the sidecar has stopped, so the last verdicts go out too.
    """

    def __init__(
        self,
        settings: ElasticsearchSettings,
        spool: DocumentSpool,
        deployments: Sequence[str],
        read_windows: WindowReader | None = None,
        client: Elasticsearch | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.spool = spool
        self.deployments = list(deployments)
        self.read_windows = read_windows
        self._client = client
        self._rng = rng or random.Random()
        self._handoff: queue.Queue[Verdict | SpotcheckCase] = queue.Queue(settings.handoff_size)
        self._counts: dict[tuple[str, str, str], int] = {
            (deployment, kind, outcome): 0 for deployment in deployments for kind in KINDS for outcome in OUTCOMES
        }
        self._counts_lock = threading.Lock()
        self._marks = spool.window_marks()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._deadline = float("inf")
        self._failures = 0
        self._retry_at = 0.0
        self._templates_installed = False
        self.thread = threading.Thread(target=self._run, name="driftgate-elasticsearch", daemon=True)

    # -- called from the consumer's thread: never blocks on the network --------------------------------

    def notify(self, verdict: Verdict) -> None:
        """A verdict changed (a sidecar listener)."""
        self._hand_over([verdict])

    __call__ = notify

    def add_cases(self, cases: list[SpotcheckCase]) -> None:
        """Disagreements were picked for review."""
        self._hand_over(cases)

    def _hand_over(self, items: Sequence[Verdict | SpotcheckCase]) -> None:
        spill: list[Verdict | SpotcheckCase] = []
        for item in items:
            try:
                self._handoff.put_nowait(item)
            except queue.Full:
                spill.append(item)
        if spill:
            # The sink's thread is behind (a slow cluster): straight to disk, never wait for it.
            self._spool(self._documents(spill))

    # -- life cycle ------------------------------------------------------------------------------------

    def start(self) -> ElasticsearchSink:
        self.thread.start()
        return self

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
            if self._handoff.empty() and not len(self.spool):
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
        next_windows = 0.0
        while True:
            stopping = self._stopping.is_set()
            try:
                self._drain_handoff()
                now = time.monotonic()
                if now >= next_windows or stopping:
                    # While windows keep closing (a backlog being read), look again at once, so none
                    # is let go by the state (it keeps `windows_kept`) before it was handed over.
                    found = self._collect_windows()
                    next_windows = now + (0.02 if found else self.settings.flush_interval_s)
                if now >= self._retry_at or stopping:
                    self._send()
            except Exception:  # a bug must not end the sink: log it, try again at the next round
                log.exception("Elasticsearch sink round failed")
            if stopping:
                return
            self._wake.wait(self._pause(next_windows))
            self._wake.clear()

    def _pause(self, next_windows: float) -> float:
        now = time.monotonic()
        until_retry = self._retry_at - now
        pause = min(self.settings.flush_interval_s, until_retry if until_retry > 0 else 0.2, next_windows - now)
        return max(0.01, pause)

    def _drain_handoff(self) -> None:
        items: list[Verdict | SpotcheckCase] = []
        while True:
            try:
                items.append(self._handoff.get_nowait())
            except queue.Empty:
                break
        self._spool(self._documents(items))

    def _documents(self, items: Sequence[Verdict | SpotcheckCase]) -> list[Document]:
        prefix, now = self.settings.index_prefix, time.time()
        return [
            verdict_document(item.to_dict(), prefix, now) if isinstance(item, Verdict)
            else spotcheck_document(item, prefix)
            for item in items
        ]

    def _spool(self, documents: list[Document]) -> None:
        dropped = self.spool.put(documents)
        if not dropped:
            return
        by_key: dict[tuple[str, str], int] = {}
        for document in dropped:
            by_key[(document.deployment, document.kind)] = by_key.get((document.deployment, document.kind), 0) + 1
        for (deployment, kind), n in by_key.items():
            self._count(deployment, kind, "dropped", n)
            log.warning(
                "Elasticsearch spool full: oldest documents dropped",
                extra={"deployment": deployment, "kind": kind, "dropped": n,
                       "spool_max_documents": self.spool.max_documents},
            )

    def _collect_windows(self) -> int:
        """Spool the windows closed since the last look; how many there were."""
        if self.read_windows is None:
            return 0
        reports = self.read_windows(self._marks)
        if not reports:
            return 0
        prefix = self.settings.index_prefix
        replica = self.settings.replica
        self._spool([document for report in reports for document in window_documents(report, prefix, replica)])
        for deployment in {report.deployment for report in reports}:
            mine = [report for report in reports if report.deployment == deployment]
            marks = self._marks.setdefault(deployment, {})
            marks.update({report.window.start: report.signature for report in mine})
            # Bounded: the oldest marks are of windows the state let go long ago; they never change again.
            keep_from = min(marks) if len(marks) <= MAX_MARKS else sorted(marks)[-MAX_MARKS]
            for start in [start for start in marks if start < keep_from]:
                del marks[start]
            self.spool.mark_windows(deployment, {r.window.start: r.signature for r in mine}, keep_from)
        return len(reports)

    def _send(self) -> None:
        """Send the spool in bulk requests until it is empty, a request fails or the deadline is over."""
        client = self._client or open_client(self.settings)
        self._client = client
        if not self._templates_installed and not self._install_templates(client):
            return
        while time.monotonic() < self._deadline:
            batch = self.spool.peek(self.settings.batch_size)
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
        except (TransportError, ApiError) as error:
            self._failed("bulk request failed", error)
            return False
        done, retry = self._settle(batch, response.body.get("items", []))
        self.spool.remove(done)
        if retry:
            self._failed("Elasticsearch asked to retry some documents", None, retry)
            return False
        if self._failures:
            log.info("Elasticsearch reachable again", extra={"failures": self._failures, "waiting": len(self.spool)})
        self._failures, self._retry_at = 0, 0.0
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
        delay = backoff_delay(self._failures, self.settings.backoff_s, self.settings.max_backoff_s, self._rng)
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


StatesReader = Callable[[Callable[[Mapping[str, DeploymentState]], list[WindowReport]]], list[WindowReport]]


def window_reader(settings: Settings, read_states: StatesReader) -> WindowReader:
    """Reads the windows closed since the marks, from the sidecar's states (``Sidecar.read_states``)."""
    references = {d.name: d.reference.class_distribution for d in settings.deployments}

    def read(marks: Mapping[str, Mapping[float, str]]) -> list[WindowReport]:
        def reports(states: Mapping[str, DeploymentState]) -> list[WindowReport]:
            return [
                report
                for name, state in states.items()
                for report in closed_windows(state, references.get(name), marks.get(name, {}))
            ]

        return read_states(reports)

    return read


def open_sink(settings: Settings, read_states: StatesReader) -> ElasticsearchSink:
    """A sink for the configured cluster, its spool opened (not started)."""
    assert settings.elasticsearch is not None
    spool = DocumentSpool(spool_path(settings), settings.elasticsearch.spool_max_documents)
    # The client is made here, not in the sink's thread, so a setting it cannot use stops the start.
    return ElasticsearchSink(
        settings.elasticsearch, spool, [d.name for d in settings.deployments], window_reader(settings, read_states),
        client=open_client(settings.elasticsearch),
    )
