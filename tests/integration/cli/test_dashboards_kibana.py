"""The Kibana saved objects (dashboards/kibana/driftgate.ndjson) against real data.

Kibana cannot be installed here, so the objects are checked the way Kibana would use
them, against the real Elasticsearch-compatible server (noida-db) filled by a running
sidecar (real broker, simulated collapse scenario at the current time):

- every reference between the objects resolves;
- every data view's pattern matches documents, and its time field is a date there;
- every Vega visualisation's query is run as Kibana runs it (``%context%`` replaced by the
  dashboard's time range, the last 24 hours) and returns buckets at every level, and a
  value for every metric;
- every saved search's query (Lucene syntax, run as ``query_string``) returns hits that
  carry each of its columns.

What is not checked here: that Kibana renders the Vega-Lite specs as intended.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer
from elasticsearch import Elasticsearch

from monitor.config import parse_config
from monitor.embedded.broker import EmbeddedBroker
from monitor.embedded.elasticsearch import EmbeddedElasticsearch
from monitor.embedded.simulator import CLASSES, TrafficSimulator
from monitor.kafka.topics import ensure_topics
from monitor.server import build_sidecar
from monitor.sinks.elasticsearch.sink import ElasticsearchSink

pytestmark = pytest.mark.integration

NDJSON = Path(__file__).resolve().parents[3] / "dashboards" / "kibana" / "driftgate.ndjson"
OBJECTS: list[dict[str, Any]] = [json.loads(line) for line in NDJSON.read_text().splitlines() if line.strip()]
TIME_RANGE = {"gte": "now-24h", "lte": "now", "format": "strict_date_optional_time"}


def _of_type(kind: str) -> list[dict[str, Any]]:
    return [item for item in OBJECTS if item["type"] == kind]


def _vega_spec(item: dict[str, Any]) -> dict[str, Any]:
    state = json.loads(item["attributes"]["visState"])
    assert state["type"] == "vega"
    spec: dict[str, Any] = json.loads(state["params"]["spec"])  # written as strict JSON, which is also HJSON
    return spec


@pytest.fixture(scope="module")
def filled(broker: EmbeddedBroker, elasticsearch_server: EmbeddedElasticsearch,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Elasticsearch]:
    """noida-db holding what a sidecar wrote under the default prefix the objects use."""
    suffix = uuid.uuid4().hex[:10]
    topics = {role: f"kibana.{role}.{suffix}" for role in ("live", "canary", "feedback")}
    settings = parse_config({
        "kafka": {"bootstrap_servers": broker.bootstrap, "start_from": "earliest", "partition_assignment": "static",
                  "poll_timeout_s": 0.2, "deadletter_topic": f"dead.{suffix}", "verdicts_topic": f"verdicts.{suffix}",
                  "spotcheck_topic": f"spotcheck.{suffix}"},
        "state": {"enabled": False, "dir": str(tmp_path_factory.mktemp("kibana-spool"))},
        "verdict_interval_s": 0.2,
        "elasticsearch": {"hosts": [elasticsearch_server.url], "flush_interval_s": 0.2},
        "deployments": [{"name": "doc-classifier", "classes": list(CLASSES), "topics": topics}],
    })
    ensure_topics(broker.bootstrap, [*topics.values(), f"dead.{suffix}", f"verdicts.{suffix}", f"spotcheck.{suffix}"])
    sidecar = build_sidecar(settings)
    sidecar.start()
    try:
        producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
        simulator = TrafficSimulator("collapse", "doc-classifier", seed=11)
        # 15 minutes of traffic ending now, at 5 requests a second: 14 closed one-minute windows. Sent
        # a minute at a time, each read before the next, as live traffic arrives: feedback then comes
        # in while windows are still open, and each closing window carries the precision known by then.
        start, produced = time.time() - 900, 0
        for minute in range(15):
            for event in simulator.stream(300, start + minute * 60, 5.0):
                producer.produce(topics[event.role], orjson.dumps(event.payload), event.key.encode())
                produced += 1
            assert producer.flush(30) == 0
            deadline = time.monotonic() + 60
            while sidecar.counts()["consumed"] < produced:
                assert time.monotonic() < deadline, "the sidecar did not consume the traffic"
                time.sleep(0.05)
        sink = next(item for item in sidecar.attachments if isinstance(item, ElasticsearchSink))
        assert sink.flush(60)
    finally:
        sidecar.stop()
    client = Elasticsearch(elasticsearch_server.url, request_timeout=10)
    client.indices.refresh(index="driftgate-*")
    yield client


def test_every_reference_resolves() -> None:
    known = {(item["type"], item["id"]) for item in OBJECTS}
    assert len(known) == len(OBJECTS)
    for item in OBJECTS:
        for reference in item["references"]:
            assert (reference["type"], reference["id"]) in known, (item["id"], reference)
    assert {"index-pattern", "visualization", "search", "dashboard"} <= {item["type"] for item in OBJECTS}


def test_every_data_view_matches_documents_with_a_date_time_field(filled: Elasticsearch) -> None:
    for view in _of_type("index-pattern"):
        pattern, time_field = view["attributes"]["title"], view["attributes"]["timeFieldName"]
        assert filled.count(index=pattern)["count"] > 0, pattern
        caps = filled.field_caps(index=pattern, fields=time_field)["fields"][time_field]
        assert list(caps) == ["date"], (pattern, caps)


def _with_context(url: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The request Kibana sends for a Vega data url: %context% becomes the dashboard's time range."""
    url = copy.deepcopy(url)
    body = url.pop("body")
    if url.pop("%context%", False):
        assert "query" not in body, "Kibana refuses %context% together with a query"
        time_field = url.pop("%timefield%")
        body["query"] = {"bool": {"must": [{"match_all": {}}], "filter": [{"range": {time_field: TIME_RANGE}}]}}
    return url.pop("index"), body


def _levels(buckets: list[dict[str, Any]], path: str = "") -> Iterator[tuple[str, list[Any]]]:
    """Every bucket list under these buckets (by agg path), and every metric value, for the assertions."""
    yield path or "top", buckets
    children: dict[str, list[Any]] = {}
    for bucket in buckets:
        for name, value in bucket.items():
            if isinstance(value, dict) and "buckets" in value:
                children.setdefault(name, []).extend(value["buckets"])
            elif isinstance(value, dict) and "value" in value:
                children.setdefault(f"{name}=metric", []).append(value["value"])
    for name, items in children.items():
        if name.endswith("=metric"):
            yield f"{path}.{name}", [item for item in items if item is not None]
        else:
            yield from _levels(items, f"{path}.{name}")


@pytest.mark.parametrize("item", _of_type("visualization"), ids=lambda item: item["id"])
def test_every_vega_query_returns_buckets_and_values(filled: Elasticsearch, item: dict[str, Any]) -> None:
    spec = _vega_spec(item)
    sources = spec["data"] if isinstance(spec["data"], list) else [spec["data"]]
    queried = 0
    for source in sources:
        if not isinstance(source.get("url"), dict):
            continue
        index, body = _with_context(source["url"])
        answer: Any = filled.search(index=index, body=body).body
        for key in source["format"]["property"].split("."):
            answer = answer[key]
        for path, values in _levels(answer):
            assert values, f"{item['id']}: no data at {path}"
        queried += 1
    assert queried, f"{item['id']} has no query"


@pytest.mark.parametrize("item", _of_type("search"), ids=lambda item: item["id"])
def test_every_saved_search_returns_hits_with_its_columns(filled: Elasticsearch, item: dict[str, Any]) -> None:
    source = json.loads(item["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
    reference = next(r for r in item["references"] if r["name"] == source["indexRefName"])
    view = next(o for o in OBJECTS if o["id"] == reference["id"])
    assert source["query"]["language"] == "lucene"
    sort = [{field: {"order": order}} for field, order in item["attributes"]["sort"]]
    query = {"bool": {"must": [{"query_string": {"query": source["query"]["query"]}}],
                      "filter": [{"range": {view["attributes"]["timeFieldName"]: TIME_RANGE}}]}}
    hits = filled.search(index=view["attributes"]["title"], query=query, sort=sort, size=100)["hits"]["hits"]
    assert hits, item["id"]
    for column in item["attributes"]["columns"]:
        assert any(hit["_source"].get(column) not in (None, []) for hit in hits), (item["id"], column)
