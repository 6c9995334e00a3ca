"""End to end on the real broker: `driftgate run` as a process, traffic in, verdicts and dead letters out.

Three deployments in one sidecar: an equal retrain (go), a collapsed canary (no_go) and a
starved one (pending). Malformed messages are interleaved with the good ones; every one of
them must reach the dead-letter topic with its reason while the verdicts stay right. Run
once per Kafka client.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from integration.sidecar_process import fresh_topics, run_config, sidecar_process
from monitor.embedded.simulator import TrafficSimulator

pytestmark = pytest.mark.integration

TOKEN = "e2e-token"
SCENARIOS = {"good": 10000, "collapse": 2500, "starved": 60}
# (payload, expected dead-letter reason), produced to the "good" deployment's live topic
MALFORMED: list[tuple[bytes, str]] = [
    (b"not json at all", "not_json"),
    (b"\xff\xfe\x00garbage", "invalid_utf8"),
    (b"[1, 2, 3]", "not_object"),
    (b'{"deployment": "good", "label": "invoice"}', "missing_field"),
    (b'{"request_id": 7, "deployment": "good", "label": "invoice"}', "wrong_type"),
    (b'{"request_id": "x1", "deployment": "good", "label": "invoice", "scores": {"invoice": 1.5}}',
     "score_out_of_range"),
    (b'{"request_id": "x2", "deployment": "good", "label": "invoice", "ts": "yesterday"}', "bad_timestamp"),
    (b'{"request_id": "x3", "deployment": "elsewhere", "label": "invoice"}', "unknown_deployment"),
    (b'{"request_id": "x4", "deployment": "good", "label": "spreadsheet"}', "unknown_class"),
    (b'{"request_id": "x5", "deployment": "good", "label": "' + b"a" * 3000 + b'"}', "too_large"),
]


@dataclass
class RunningSidecar:
    url: str
    topics: dict[str, dict[str, str]]
    deadletter_topic: str
    verdicts_topic: str
    produced: int
    process: subprocess.Popen[bytes]


def _produce(bootstrap: str, topics: dict[str, dict[str, str]]) -> int:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    produced = 0
    for name, n_requests in SCENARIOS.items():
        scenario = "good" if name == "starved" else name
        simulator = TrafficSimulator(scenario, deployment=name, seed=7)
        for i, event in enumerate(simulator.stream(n_requests, start_ts=1_800_000_000.0, rate_per_s=100)):
            producer.produce(topics[name][event.role], orjson.dumps(event.payload), event.key.encode())
            produced += 1
            if name == "good" and i % 400 == 0 and i // 400 < len(MALFORMED):
                payload, _ = MALFORMED[i // 400]
                producer.produce(topics[name]["live"], payload, b"bad")
                produced += 1
    assert producer.flush(30) == 0
    return produced


@pytest.fixture(scope="module", params=["confluent", "kafka-python"])
def sidecar(request: pytest.FixtureRequest, broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
    RunningSidecar
]:
    client = request.param
    run = fresh_topics(broker.bootstrap, "e2e", SCENARIOS)
    topics = run.inputs
    config = run_config(
        broker.bootstrap, run,
        [{"name": name, "topics": topics[name], "classes": ["invoice", "contract", "other"]} for name in SCENARIOS],
        kafka={"client": client, "max_message_bytes": 2048}, state={"enabled": False},
    )
    with sidecar_process(config, tmp_path_factory.mktemp(f"e2e-{client}"), TOKEN) as process:
        produced = _produce(broker.bootstrap, topics)
        outputs = run.outputs
        yield RunningSidecar(process.url, topics, outputs["deadletter_topic"], outputs["verdicts_topic"], produced,
                             process.process)


def _get(sidecar: RunningSidecar, path: str) -> Any:
    response = httpx.get(f"{sidecar.url}{path}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    response.raise_for_status()
    return response.json()


def _wait_consumed(sidecar: RunningSidecar, timeout_s: float = 90) -> dict[str, Any]:
    """Wait until every produced message is accounted for; return the per-deployment snapshots."""
    deadline = time.monotonic() + timeout_s
    while True:
        snapshots = {name: _get(sidecar, f"/v1/deployments/{name}/metrics") for name in SCENARIOS}
        processed = sum(sum(s["events"].values()) for s in snapshots.values())
        dead = sum(sum(s["dead_letters"].values()) for s in snapshots.values())
        if processed + dead >= sidecar.produced or time.monotonic() > deadline:
            return snapshots
        time.sleep(0.5)


def test_every_message_is_processed_or_dead_lettered(sidecar: RunningSidecar) -> None:
    snapshots = _wait_consumed(sidecar)
    processed = sum(sum(s["events"].values()) for s in snapshots.values())
    dead = sum(sum(s["dead_letters"].values()) for s in snapshots.values())
    assert processed + dead == sidecar.produced
    assert snapshots["good"]["dead_letters"] == {reason: 1 for _, reason in MALFORMED}


def test_verdicts_equal_go_collapse_no_go_starved_pending(sidecar: RunningSidecar) -> None:
    _wait_consumed(sidecar)
    time.sleep(0.5)  # one more verdict evaluation after the last batch
    good = _get(sidecar, "/v1/deployments/good/verdict")
    collapse = _get(sidecar, "/v1/deployments/collapse/verdict")
    starved = _get(sidecar, "/v1/deployments/starved/verdict")
    assert good["verdict"] == "go", good["reasons"]
    assert collapse["verdict"] == "no_go"
    assert any("class distribution" in reason for reason in collapse["reasons"]), collapse["reasons"]
    assert starved["verdict"] == "pending"
    assert good["samples"]["canary"] == SCENARIOS["good"]


def _read_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 30) -> list[Any]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4()}",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    messages: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while len(messages) < expected and time.monotonic() < deadline:
        messages.extend(m for m in consumer.consume(100, 0.5) if m.error() is None)
    consumer.close()
    return messages


def test_dead_letters_carry_original_bytes_origin_and_reason(sidecar: RunningSidecar, broker: Any) -> None:
    _wait_consumed(sidecar)
    messages = _read_all(broker.bootstrap, sidecar.deadletter_topic, len(MALFORMED))
    assert len(messages) == len(MALFORMED)
    by_reason = {dict(m.headers())["driftgate.reason"].decode(): m for m in messages}
    for payload, reason in MALFORMED:
        message = by_reason[reason]
        headers = dict(message.headers())
        assert message.value() == payload
        assert message.key() == b"bad"
        assert headers["driftgate.source.topic"].decode() == sidecar.topics["good"]["live"]
        assert int(headers["driftgate.source.offset"]) >= 0
        assert headers["driftgate.detail"]


def test_verdict_changes_are_published(sidecar: RunningSidecar, broker: Any) -> None:
    _wait_consumed(sidecar)
    time.sleep(0.5)
    messages = _read_all(broker.bootstrap, sidecar.verdicts_topic, 3, timeout_s=10)
    latest = {m.key().decode(): orjson.loads(m.value()) for m in messages}
    assert latest["collapse"]["verdict"] == "no_go"
    assert latest["good"]["verdict"] == "go"


def test_metrics_and_readiness(sidecar: RunningSidecar) -> None:
    _wait_consumed(sidecar)
    assert httpx.get(f"{sidecar.url}/readyz", timeout=5).status_code == 200
    text = httpx.get(f"{sidecar.url}/metrics", timeout=5).text
    assert 'driftgate_verdict{deployment="collapse",verdict="no_go"} 1.0' in text
    assert 'driftgate_dead_letters_total{deployment="good",reason="not_json"} 1.0' in text
    # everything produced is processed, so no input partition has records waiting
    for role in ("live", "canary"):
        assert f'driftgate_consumer_lag{{deployment="good",partition="0",role="{role}"}} 0.0' in text
    assert httpx.get(f"{sidecar.url}/v1/deployments", timeout=5).status_code == 401


def test_log_lines_are_json_without_the_token(
    sidecar: RunningSidecar, tmp_path_factory: pytest.TempPathFactory
) -> None:
    _wait_consumed(sidecar)
    logs = sorted(Path(tmp_path_factory.getbasetemp()).glob("e2e-*/sidecar.log"))
    assert logs
    for log in logs:
        text = log.read_text(errors="replace")
        assert TOKEN not in text
        for line in filter(None, text.splitlines()):
            assert orjson.loads(line)["level"]
