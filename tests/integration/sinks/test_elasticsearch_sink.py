"""The Elasticsearch sink end to end: the real broker, a real sidecar, the real noida-db server.

A simulated scenario runs in two phases, each with its own canary version (a collapsed
canary, then a shifted one), so windows close and verdicts change in both. Between the
phases the Elasticsearch-compatible server is stopped; the sidecar keeps consuming while
its documents wait in the spool (visible on /metrics), and the server is started again
with the same data directory. Afterwards every closed window, every verdict change (as
read back from the verdicts topic) and every picked spot-check case (from the spot-check
topic) is in Elasticsearch exactly once, with the counts the sidecar holds.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import msgspec
import orjson
import pytest
import yaml
from confluent_kafka import Consumer, Producer, TopicPartition
from elasticsearch import Elasticsearch

from monitor.config import ElasticsearchSettings, Settings, parse_config
from monitor.core.events import Prediction
from monitor.core.state.deployment import DeploymentState
from monitor.core.verdict import Verdict
from monitor.embedded.api_thread import ApiThread
from monitor.embedded.broker import EmbeddedBroker
from monitor.embedded.elasticsearch import EmbeddedElasticsearch
from monitor.embedded.loopback import free_port
from monitor.embedded.simulator import CLASSES, TrafficSimulator
from monitor.kafka.topics import ensure_topics
from monitor.server import build_sidecar
from monitor.sidecar.service import Sidecar
from monitor.sinks.elasticsearch.sink import ElasticsearchSink
from monitor.sinks.elasticsearch.spool import DocumentSpool

pytestmark = pytest.mark.integration

DEPLOYMENT = "doc-classifier"
START_TS = 1_800_000_000.0  # 2027-01-15T08:00:00Z
RATE_PER_S = 50.0
WINDOW_S = 10.0
PHASE_REQUESTS = 1500  # 30 s of event time per phase: three windows


@dataclass
class Scenario:
    """What a finished run left behind, for the assertions."""

    settings: Settings
    prefix: str
    snapshot: dict[str, Any]
    verdicts: list[dict[str, Any]]
    cases: list[dict[str, Any]]
    spooled_while_down: int
    metrics_while_down: str
    client: Elasticsearch


def _settings(broker: EmbeddedBroker, server: EmbeddedElasticsearch, suffix: str, spool: Path) -> Settings:
    return parse_config({
        "kafka": {"bootstrap_servers": broker.bootstrap, "start_from": "earliest", "partition_assignment": "static",
                  "poll_timeout_s": 0.2, "deadletter_topic": f"dead.{suffix}", "verdicts_topic": f"verdicts.{suffix}",
                  "spotcheck_topic": f"spotcheck.{suffix}"},
        "api": {"port": 0},
        "state": {"enabled": False, "dir": str(spool)},
        "verdict_interval_s": 0.2,
        "elasticsearch": {"hosts": [server.url], "index_prefix": f"t-{suffix}", "flush_interval_s": 0.2,
                          "backoff_s": 0.1, "max_backoff_s": 1.0, "request_timeout_s": 2.0, "batch_size": 100},
        "deployments": [{
            "name": DEPLOYMENT, "classes": list(CLASSES), "window_s": WINDOW_S,
            "topics": {role: f"{role}.{suffix}" for role in ("live", "canary", "feedback")},
            "policy": {"min_samples": 200},
        }],
    })


def _produce(settings: Settings, scenario: str, version: str, start_ts: float, seed: int) -> int:
    topics = settings.deployments[0].topics
    by_role = {"live": topics.live, "canary": topics.canary, "feedback": topics.feedback}
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "linger.ms": 20})
    simulator = TrafficSimulator(scenario, DEPLOYMENT, seed=seed, canary_version=version)
    produced = 0
    for event in simulator.stream(PHASE_REQUESTS, start_ts, RATE_PER_S):
        producer.produce(by_role[event.role], orjson.dumps(event.payload), event.key.encode())
        produced += 1
    assert producer.flush(30) == 0
    return produced


def _wait(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _read_topic(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{uuid.uuid4().hex}",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    values: list[dict[str, Any]] = []
    idle = time.monotonic() + 5.0
    while time.monotonic() < idle:
        message = consumer.poll(0.5)
        if message is None or message.error():
            continue
        values.append(orjson.loads(message.value()))
        idle = time.monotonic() + 2.0
    consumer.close()
    return values


def _sink(sidecar: Sidecar) -> ElasticsearchSink:
    return next(item for item in sidecar.attachments if isinstance(item, ElasticsearchSink))


def _count(client: Elasticsearch, pattern: str) -> int:
    try:
        client.indices.refresh(index=pattern)
        return int(client.count(index=pattern)["count"])
    except Exception:  # no index yet, or the server is starting
        return 0


@pytest.fixture(scope="module")
def scenario(
    broker: EmbeddedBroker, elasticsearch_server: EmbeddedElasticsearch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scenario]:
    suffix = uuid.uuid4().hex[:10]
    settings = _settings(broker, elasticsearch_server, suffix, tmp_path_factory.mktemp("spool"))
    prefix = settings.elasticsearch.index_prefix if settings.elasticsearch else ""
    deployment = settings.deployments[0]
    ensure_topics(broker.bootstrap, [deployment.topics.live, deployment.topics.canary, deployment.topics.feedback,
                                     settings.kafka.verdicts_topic, settings.kafka.spotcheck_topic,
                                     settings.kafka.deadletter_topic])
    client = Elasticsearch(elasticsearch_server.url, request_timeout=10)
    sidecar = build_sidecar(settings)
    sidecar.start()
    api = ApiThread(settings, sidecar).start()
    try:
        sink = _sink(sidecar)
        produced = _produce(settings, "collapse", "v42", START_TS, seed=3)
        _wait(lambda: sidecar.counts()["consumed"] >= produced, 60, "phase 1 to be consumed")
        # two windows closed (the third is still open): 2 windows x 2 roles x 3 classes
        _wait(lambda: _count(client, f"{prefix}-windows-*") >= 12, 30, "phase 1 windows in Elasticsearch")

        elasticsearch_server.stop()
        produced += _produce(settings, "shift", "v43", START_TS + PHASE_REQUESTS / RATE_PER_S, seed=4)
        _wait(lambda: sidecar.counts()["consumed"] >= produced, 60, "phase 2 to be consumed")
        _wait(lambda: sink.spool.waiting().get((DEPLOYMENT, "window"), 0) >= 18, 30, "window documents to spool")
        time.sleep(2.0)  # "a while": several bulk attempts fail and back off
        spooled = len(sink.spool)
        metrics = httpx.get(f"{api.url}/metrics", timeout=5).text

        elasticsearch_server.start()
        assert sink.flush(60), "the spool did not drain once Elasticsearch was back"
        snapshot = msgspec.to_builtins(sidecar.snapshot(DEPLOYMENT))
    finally:
        api.stop()
        sidecar.stop()
    client.indices.refresh(index=f"{prefix}-*")
    yield Scenario(
        settings, prefix, snapshot,
        _read_topic(broker.bootstrap, settings.kafka.verdicts_topic),
        _read_topic(broker.bootstrap, settings.kafka.spotcheck_topic),
        spooled, metrics, client,
    )


def _all(client: Elasticsearch, pattern: str) -> list[dict[str, Any]]:
    hits = client.search(index=pattern, size=10_000, query={"match_all": {}})["hits"]["hits"]
    return list(hits)


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_documents_waited_on_disk_while_elasticsearch_was_down(scenario: Scenario) -> None:
    assert scenario.spooled_while_down >= 18
    waiting = [
        line for line in scenario.metrics_while_down.splitlines()
        if line.startswith("driftgate_elasticsearch_spool_documents{") and 'kind="window"' in line
    ]
    assert waiting and float(waiting[0].rsplit(" ", 1)[1]) >= 18


def test_every_closed_window_is_indexed_once_with_the_sidecars_counts(scenario: Scenario) -> None:
    watermark = _epoch(scenario.snapshot["watermark"])
    closed = [w for w in scenario.snapshot["windows"] if w["start"] + WINDOW_S <= watermark]
    assert len(closed) >= 5  # both phases' windows, across the outage
    hits = _all(scenario.client, f"{scenario.prefix}-windows-*")
    ids = Counter(hit["_id"] for hit in hits)
    assert max(ids.values()) == 1
    by_key = Counter((hit["_source"]["role"], _epoch(hit["_source"]["window"]["start"]), hit["_source"]["class"])
                     for hit in hits)
    assert max(by_key.values()) == 1, "a window, role and class indexed twice under different ids"
    expected = {
        (role, window["start"], label): window[role].get(label, 0)
        for window in closed for role in ("live", "canary") for label in CLASSES
    }
    indexed = {
        (hit["_source"]["role"], _epoch(hit["_source"]["window"]["start"]), hit["_source"]["class"]):
        hit["_source"]["count"] for hit in hits
    }
    assert indexed == expected


def test_every_verdict_change_is_indexed_once(scenario: Scenario) -> None:
    published = Counter((v["canary_version"], v["verdict"], v["evaluated_at"]) for v in scenario.verdicts)
    assert {key[:2] for key in published} >= {("v42", "no_go"), ("v43", "no_go")}
    hits = _all(scenario.client, f"{scenario.prefix}-verdicts-*")
    indexed = Counter(
        (hit["_source"]["canary_version"], hit["_source"]["verdict"], hit["_source"]["evaluated_at"]) for hit in hits
    )
    assert indexed == published
    no_go = next(hit["_source"] for hit in hits if hit["_source"]["verdict"] == "no_go")
    assert no_go["reasons"] and no_go["failed_checks"]
    assert {check["name"] for check in no_go["checks"]} >= set(no_go["failed_checks"])


def test_every_spotcheck_case_is_indexed_once(scenario: Scenario) -> None:
    assert scenario.cases
    hits = _all(scenario.client, f"{scenario.prefix}-spotcheck-*")
    assert Counter(hit["_source"]["request_id"] for hit in hits) == Counter(c["request_id"] for c in scenario.cases)
    first = next(hit["_source"] for hit in hits)
    assert first["live_label"] != first["canary_label"]


def test_nothing_was_dropped_or_refused(scenario: Scenario) -> None:
    series = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in scenario.metrics_while_down.splitlines()
        if line.startswith("driftgate_elasticsearch_documents_total{")
    }
    lost = {name: value for name, value in series.items()
            if 'outcome="dropped"' in name or 'outcome="rejected"' in name}
    assert len(lost) == 6 and set(lost.values()) == {0.0}  # 3 kinds x (dropped, rejected), all there, all 0


# -- the sink alone, against the real server -----------------------------------------------------------


def _verdicts(n: int) -> list[Verdict]:
    return [
        Verdict(DEPLOYMENT, "no_go" if i % 2 else "pending", [f"reason {i}"], [], {"live": i, "canary": i},
                "v1", "v2", f"2027-01-15T08:00:{i:02d}.000Z")
        for i in range(n)
    ]


def _states(n_windows: int) -> dict[str, DeploymentState]:
    """A deployment's state with ``n_windows`` closed windows of live answers (and one open)."""
    state = DeploymentState.new(DEPLOYMENT, classes=list(CLASSES), window_s=WINDOW_S, windows_kept=n_windows + 1)
    for i in range(int(n_windows * WINDOW_S) + 1):
        state.add_prediction("live", Prediction(f"r{i}", DEPLOYMENT, CLASSES[i % 3], START_TS + i, "v1"))
    return {DEPLOYMENT: state}


def _settings_for(url: str, prefix: str, **extra: Any) -> ElasticsearchSettings:
    return ElasticsearchSettings.model_validate({
        "hosts": [url], "index_prefix": prefix, "flush_interval_s": 0.1, "backoff_s": 0.05, "max_backoff_s": 0.2,
        "request_timeout_s": 2.0, **extra,
    })


def test_a_full_spool_drops_the_oldest_windows_never_verdicts_and_delivers_the_rest_later(
    elasticsearch_server: EmbeddedElasticsearch, tmp_path: Path
) -> None:
    prefix = f"t-{uuid.uuid4().hex[:10]}"
    path = tmp_path / "spool.sqlite"
    away = _settings_for(f"http://127.0.0.1:{free_port()}", prefix, spool_max_documents=100)
    sink = ElasticsearchSink(away, DocumentSpool(path, 100), [DEPLOYMENT])
    sink.start()
    sink.on_batch(_states(30))
    for verdict in _verdicts(8):
        sink.notify(verdict)
    _wait(lambda: sink.counts()[(DEPLOYMENT, "window", "dropped")] > 0, 10, "windows to be dropped")
    sink.stop(0.5)
    counts = sink.counts()
    # 30 windows x 2 roles x 3 classes = 180 window documents, 8 verdicts, a bound of 100
    assert counts[(DEPLOYMENT, "window", "dropped")] == 180 + 8 - 100
    assert counts[(DEPLOYMENT, "verdict", "dropped")] == 0
    assert counts[(DEPLOYMENT, "window", "indexed")] == 0

    # the next start, with Elasticsearch there: everything that waited is delivered
    back = ElasticsearchSink(_settings_for(elasticsearch_server.url, prefix), DocumentSpool(path, 100), [DEPLOYMENT])
    back.start()
    assert back.flush(30)
    back.stop(5)
    client = Elasticsearch(elasticsearch_server.url)
    client.indices.refresh(index=f"{prefix}-*")
    assert client.count(index=f"{prefix}-verdicts-*")["count"] == 8
    windows = client.search(index=f"{prefix}-windows-*", size=1000, sort=[{"@timestamp": "asc"}])["hits"]["hits"]
    assert len(windows) == 100 - 8
    # the newest windows are those kept: the last indexed window is the last closed one
    assert _epoch(windows[-1]["_source"]["window"]["start"]) == START_TS + 29 * WINDOW_S
    assert back.counts()[(DEPLOYMENT, "window", "indexed")] == 92


def test_a_document_elasticsearch_refuses_is_counted_and_does_not_block_the_rest(
    elasticsearch_server: EmbeddedElasticsearch, tmp_path: Path
) -> None:
    prefix = f"t-{uuid.uuid4().hex[:10]}"
    client = Elasticsearch(elasticsearch_server.url)
    # An index made by someone else, where `deployment` is a number: a verdict document cannot go in.
    client.indices.create(index=f"{prefix}-verdicts-2027.01.15",
                          mappings={"properties": {"deployment": {"type": "long"}}})
    sink = ElasticsearchSink(_settings_for(elasticsearch_server.url, prefix), DocumentSpool(tmp_path / "s", 100),
                             [DEPLOYMENT])
    sink.start()
    sink.on_batch(_states(2))
    for verdict in _verdicts(2):
        sink.notify(verdict)
    assert sink.flush(30)
    sink.stop(5)
    counts = sink.counts()
    assert counts[(DEPLOYMENT, "verdict", "rejected")] == 2
    assert counts[(DEPLOYMENT, "window", "indexed")] == 2 * 2 * 3


class _BodyLimitProxy(ThreadingHTTPServer):
    """A reverse proxy on loopback with a request body limit, in front of the real server, as
    an nginx (client_max_body_size) or a cluster's http.max_content_length would be: 413 above it."""

    def __init__(self, upstream: str, limit: int) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if len(body) > proxy.limit:
                    proxy.refused += 1
                    self.send_response(413)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                answer = httpx.request(self.command, upstream + self.path, content=body, headers=headers)
                self.send_response(answer.status_code)
                for name, value in answer.headers.items():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_PUT = do_POST = do_HEAD = _forward

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.limit, self.refused = limit, 0
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


def test_a_bulk_request_over_a_body_limit_is_sent_in_halves_and_a_too_large_document_refused(
    elasticsearch_server: EmbeddedElasticsearch, tmp_path: Path
) -> None:
    proxy = _BodyLimitProxy(elasticsearch_server.url, limit=20_000)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        prefix = f"t-{uuid.uuid4().hex[:10]}"
        sink = ElasticsearchSink(_settings_for(proxy.url, prefix, batch_size=500),
                                 DocumentSpool(tmp_path / "s", 10_000), [DEPLOYMENT])
        sink.start()
        sink.on_batch(_states(30))  # 180 window documents: one bulk request is far over 20 kB
        verdicts = _verdicts(3)
        verdicts[1].reasons.append("x" * 30_000)  # this one alone is over the limit
        for verdict in verdicts:
            sink.notify(verdict)
        assert sink.flush(60)
        sink.stop(5)
    finally:
        proxy.shutdown()
    counts = sink.counts()
    assert proxy.refused >= 2  # the full batch, then the lone document
    assert counts[(DEPLOYMENT, "window", "indexed")] >= 180
    assert (counts[(DEPLOYMENT, "verdict", "indexed")], counts[(DEPLOYMENT, "verdict", "rejected")]) == (2, 1)
    client = Elasticsearch(elasticsearch_server.url)
    client.indices.refresh(index=f"{prefix}-*")
    assert client.count(index=f"{prefix}-windows-*")["count"] == 180
    assert client.count(index=f"{prefix}-verdicts-*")["count"] == 2


def test_new_indices_get_the_templates_mappings_and_lifecycle_policy(
    elasticsearch_server: EmbeddedElasticsearch, tmp_path: Path
) -> None:
    prefix = f"t-{uuid.uuid4().hex[:10]}"
    settings = _settings_for(elasticsearch_server.url, prefix, ilm_policy="driftgate-30d")
    sink = ElasticsearchSink(settings, DocumentSpool(tmp_path / "s", 100), [DEPLOYMENT])
    sink.start()
    sink.on_batch(_states(1))
    sink.notify(_verdicts(1)[0])
    assert sink.flush(30)
    sink.stop(5)
    client = Elasticsearch(elasticsearch_server.url)
    for pattern in (f"{prefix}-windows-*", f"{prefix}-verdicts-*"):
        (_index, found), = client.indices.get(index=pattern).body.items()
        assert found["settings"]["index"]["lifecycle"]["name"] == "driftgate-30d"
        assert found["mappings"]["dynamic"] in (False, "false")
    windows = client.indices.get_mapping(index=f"{prefix}-windows-*").body
    properties = next(iter(windows.values()))["mappings"]["properties"]
    assert properties["class"] == {"type": "keyword"} and properties["count"] == {"type": "long"}
    verdicts = next(iter(client.indices.get_mapping(index=f"{prefix}-verdicts-*").body.values()))
    assert verdicts["mappings"]["properties"]["checks"]["type"] == "nested"


# -- a sidecar killed and started again ----------------------------------------------------------------


def _run_sidecar(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen([sys.executable, "-m", "monitor", "run", "--config", str(config)],
                                stdout=output, stderr=subprocess.STDOUT)


def _snapshot(url: str) -> dict[str, Any] | None:
    try:
        answer = httpx.get(f"{url}/v1/deployments/{DEPLOYMENT}/metrics", timeout=2)
    except httpx.HTTPError:
        return None
    return answer.json() if answer.status_code == 200 else None


def _events(url: str) -> int:
    snapshot = _snapshot(url)
    return sum(snapshot["events"].values()) if snapshot else -1


def test_a_killed_and_restarted_sidecar_indexes_every_window_and_verdict_once(
    broker: EmbeddedBroker, elasticsearch_server: EmbeddedElasticsearch, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:10]
    settings = _settings(broker, elasticsearch_server, suffix, tmp_path / "state")
    prefix = f"t-{suffix}"
    port = free_port()
    raw = settings.model_dump(mode="json", exclude_none=True)
    raw["api"]["port"] = port
    raw["state"] = {"enabled": True, "dir": str(tmp_path / "state"), "checkpoint_interval_s": 0.5}
    raw["kafka"]["group_id"] = f"restart-{suffix}"
    config = tmp_path / "driftgate.yaml"
    config.write_text(yaml.safe_dump(raw))
    url = f"http://127.0.0.1:{port}"
    client = Elasticsearch(elasticsearch_server.url, request_timeout=10)
    ensure_topics(broker.bootstrap, [settings.kafka.verdicts_topic, settings.kafka.spotcheck_topic,
                                     settings.kafka.deadletter_topic])

    process = _run_sidecar(config, tmp_path / "sidecar.log")
    try:
        produced = _produce(settings, "collapse", "v42", START_TS, seed=5)
        _wait(lambda: _events(url) >= produced, 90, "phase 1 to be consumed")
        _wait(lambda: _count(client, f"{prefix}-windows-*") >= 12, 30, "phase 1 windows in Elasticsearch")
        time.sleep(1.5)  # a checkpoint holds phase 1
        process.kill()
        process.wait(10)

        produced += _produce(settings, "shift", "v43", START_TS + PHASE_REQUESTS / RATE_PER_S, seed=6)
        process = _run_sidecar(config, tmp_path / "sidecar.log")
        _wait(lambda: _events(url) >= produced, 90, "phase 2 to be consumed after the restart")
        time.sleep(1.0)  # a round of the sink after the last event
        snapshot = _snapshot(url)
        assert snapshot is not None
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    client.indices.refresh(index=f"{prefix}-*")

    watermark = _epoch(snapshot["watermark"])
    closed = [w for w in snapshot["windows"] if w["start"] + WINDOW_S <= watermark]
    assert len(closed) >= 5
    hits = _all(client, f"{prefix}-windows-*")
    indexed = Counter((h["_source"]["role"], _epoch(h["_source"]["window"]["start"]), h["_source"]["class"])
                      for h in hits)
    assert max(indexed.values()) == 1
    assert {(h["_source"]["role"], _epoch(h["_source"]["window"]["start"]), h["_source"]["class"]):
            h["_source"]["count"] for h in hits} == {
        (role, w["start"], label): w[role].get(label, 0) for w in closed for role in ("live", "canary")
        for label in CLASSES}

    # The verdicts topic is at least once across a crash (docs/operations.md): a change may go out
    # again after the restart. The index holds each distinct one once, by its deterministic id.
    published = {(v["canary_version"], v["verdict"], v["evaluated_at"])
                 for v in _read_topic(broker.bootstrap, settings.kafka.verdicts_topic)}
    verdict_hits = _all(client, f"{prefix}-verdicts-*")
    indexed = Counter((h["_source"]["canary_version"], h["_source"]["verdict"], h["_source"]["evaluated_at"])
                      for h in verdict_hits)
    assert set(indexed) == published and max(indexed.values()) == 1
    assert {key[:2] for key in published} >= {("v42", "no_go"), ("v43", "no_go")}
