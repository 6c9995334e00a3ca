"""Crashes and outages on the real broker: `driftgate run` as a process, killed and restarted.

- SIGKILL at random points while it consumes a pre-produced stream, restarted each time
  from its checkpoint: at the end every figure equals an uninterrupted run's.
- The broker stopped and started again mid-stream (its memory storage loses the topics,
  so a second phase recreates them and produces a fresh stream): /readyz goes 503 with
  the reason and back to 200, and the second phase is consumed.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from confluent_kafka import Consumer, Producer, TopicPartition

from monitor.config import Settings, parse_config
from monitor.core.profile import build_profile
from monitor.embedded.broker import EmbeddedBroker
from monitor.embedded.loopback import free_port
from monitor.embedded.simulator import TrafficSimulator
from monitor.kafka.topics import ensure_topics
from monitor.reports.profile_file import load_profiles, write_profile
from monitor.sidecar.checkpoint import SqliteCheckpointStore, decode

pytestmark = pytest.mark.integration

CLASSES = ["invoice", "contract", "other"]
# deployment -> (canary scenario, requests); about 30,000 events with the feedback
REQUESTS = {"steady": ("good", 7000), "broken": ("collapse", 6000)}
PARTITIONS = 2
MALFORMED = [b"not json", b"\xff\xfe\x00", b"[1, 2]", b'{"deployment": "steady", "label": "invoice"}',
             b'{"request_id": "m1", "deployment": "steady", "label": "spreadsheet"}']
START_TS = 1_800_000_000.0


@dataclass
class Stream:
    """The input topics of one test and what was produced to them."""

    suffix: str
    topics: dict[str, dict[str, str]]
    produced: int
    malformed: int


def make_topics(suffix: str) -> dict[str, dict[str, str]]:
    return {name: {role: f"{name}.{role}.{suffix}" for role in ("live", "canary", "feedback")} for name in REQUESTS}


def produce(bootstrap: str, topics: dict[str, dict[str, str]], seed: int, scale: float = 1.0) -> tuple[int, int]:
    """Produce the simulated traffic (and malformed messages on each live topic); return (all, malformed)."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    produced = malformed = 0
    for name, (scenario, n_requests) in REQUESTS.items():
        simulator = TrafficSimulator(scenario, deployment=name, seed=seed)
        events = simulator.stream(int(n_requests * scale), start_ts=START_TS, rate_per_s=100)
        for i, event in enumerate(events):
            producer.produce(topics[name][event.role], orjson.dumps(event.payload), event.key.encode())
            produced += 1
            if i % 500 == 0:
                producer.produce(topics[name]["live"], MALFORMED[(i // 500) % len(MALFORMED)], b"bad")
                produced += 1
                malformed += 1
        producer.poll(0)
    assert producer.flush(30) == 0
    return produced, malformed


def reference_profile(directory: Path, name: str) -> Path:
    """A profile of the simulator's live answers (another seed than the traffic's) for deployment ``name``."""
    simulator = TrafficSimulator("good", deployment=name, seed=99)
    live = [e.payload for e in simulator.stream(2000, start_ts=START_TS, rate_per_s=100) if e.role == "live"]
    columns = {key: [event["features"][key] for event in live] for key in ("n_pages", "lang", "text_len")}
    columns.update({f"scores.{c}": [event["scores"].get(c) for event in live] for c in CLASSES})
    path = directory / f"{name}.profile.json"
    write_profile(build_profile(name, [event["label"] for event in live], columns), path)
    return path


def config_file(
    directory: Path, bootstrap: str, topics: dict[str, dict[str, str]], run: str, checkpoint_interval_s: float = 0.2
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "kafka": {"bootstrap_servers": bootstrap, "start_from": "earliest", "partition_assignment": "static",
                  "group_id": f"restarts-{run}", "deadletter_topic": f"dead.{run}", "verdicts_topic": f"verdicts.{run}",
                  "poll_timeout_s": 0.2, "max_poll_records": 100},
        "api": {"port": free_port()},
        "verdict_interval_s": 0.2,
        "state": {"dir": str(directory / "state"), "checkpoint_interval_s": checkpoint_interval_s},
        "log": {"format": "json"},
        # A reference profile for the feature figures: bins learned from live would depend on which live
        # answers came first, which the interleaving of partitions decides.
        "deployments": [{"name": name, "topics": topics[name], "classes": CLASSES,
                         "reference": {"profile": str(reference_profile(directory, name))}} for name in REQUESTS],
    }
    path = directory / "driftgate.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class SidecarProcess:
    """One `python -m monitor run` process, its log appended to a file next to its config."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.settings = yaml.safe_load(config.read_text())
        self.url = f"http://127.0.0.1:{self.settings['api']['port']}"
        self._log = (config.parent / "sidecar.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "--config", str(config)],
            stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, "DRIFTGATE_API_TOKEN": ""},
        )
        wait_for(lambda: self._healthy(), 30, f"the sidecar at {self.url} did not come up")

    def _healthy(self) -> bool:
        assert self.process.poll() is None, f"the sidecar exited with {self.process.returncode}"
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def get(self, path: str) -> Any:
        response = httpx.get(f"{self.url}{path}", timeout=5)
        response.raise_for_status()
        return response.json() if path != "/metrics" else response.text

    def progress(self) -> int:
        """Messages accounted for: processed plus dead-lettered, over every deployment."""
        total = 0
        for name in REQUESTS:
            snapshot = self.get(f"/v1/deployments/{name}/metrics")
            total += sum(snapshot["events"].values()) + sum(snapshot["dead_letters"].values())
        return total

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self._log.close()

    def terminate(self, timeout_s: float = 15) -> int:
        self.process.terminate()
        try:
            return self.process.wait(timeout_s)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            self._log.close()


def wait_for(condition: Callable[[], bool], timeout_s: float, message: str, pause_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(pause_s)


def figures(sidecar: SidecarProcess) -> dict[str, Any]:
    """Every figure the sidecar shows that follows from which events it has counted.

    Left out: what depends on the order the events came in as well, namely the running
    evidence of the sequential tests (and the values and sentences quoting it) and which
    disagreements the spot-check sampler picked. A restarted consumer reads the partitions
    in another interleaving (Kafka orders nothing across partitions), so those may differ
    in their last digits while every count is equal.
    """
    shown: dict[str, Any] = {}
    for name in REQUESTS:
        metrics = sidecar.get(f"/v1/deployments/{name}/metrics")
        metrics.pop("spotcheck", None)
        shown[f"{name} metrics"] = metrics
        verdict = sidecar.get(f"/v1/deployments/{name}/verdict")
        shown[f"{name} verdict"] = {
            "verdict": verdict["verdict"],
            "samples": verdict["samples"],
            "versions": (verdict["live_version"], verdict["canary_version"]),
            "checks": [{key: check.get(key) for key in ("name", "status", "threshold", "blocking")}
                       for check in verdict["checks"]],
            "reasons": len(verdict["reasons"]),
        }
    # The consumer lag is where the reading stands at the moment, not a figure of the state.
    shown["prometheus"] = sorted(
        line for line in sidecar.get("/metrics").splitlines()
        if line.startswith("driftgate_") and not line.startswith("driftgate_consumer_lag")
    )
    return shown


def differences(got: Any, expected: Any, path: str = "") -> list[str]:
    """Where two JSON-like values differ, as readable paths (empty when equal)."""
    if isinstance(got, dict) and isinstance(expected, dict):
        found = [f"{path}.{key}: missing" for key in expected if key not in got]
        found += [f"{path}.{key}: unexpected" for key in got if key not in expected]
        for key in expected:
            if key in got:
                found += differences(got[key], expected[key], f"{path}.{key}")
        return found
    if isinstance(got, list) and isinstance(expected, list) and len(got) == len(expected):
        pairs = enumerate(zip(got, expected, strict=True))
        return [found for i, (a, b) in pairs for found in differences(a, b, f"{path}[{i}]")]
    return [] if got == expected else [f"{path}: {got!r} != {expected!r}"]


def consumed_in_checkpoint(settings: Settings) -> int:
    store = SqliteCheckpointStore(settings.state.dir, name=settings.kafka.group_id)
    try:
        snapshot = store.load()
    finally:
        store.close()
    return 0 if snapshot is None else int(decode(snapshot, settings, load_profiles(settings)).figures["consumed"])


def read_topic(bootstrap: str, topic: str, timeout_s: float = 10) -> list[Any]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4()}",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    messages: list[Any] = []
    quiet_since = time.monotonic()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() - quiet_since < 2 and time.monotonic() < deadline:
        batch = [m for m in consumer.consume(500, 0.3) if m.error() is None]
        if batch:
            messages.extend(batch)
            quiet_since = time.monotonic()
    consumer.close()
    return messages


@pytest.fixture(scope="module")
def stream(broker: EmbeddedBroker) -> Stream:
    suffix = uuid.uuid4().hex[:8]
    topics = make_topics(suffix)
    ensure_topics(broker.bootstrap, [t for roles in topics.values() for t in roles.values()], partitions=PARTITIONS)
    produced, malformed = produce(broker.bootstrap, topics, seed=11)
    return Stream(suffix, topics, produced, malformed)


@pytest.fixture(scope="module")
def uninterrupted(
    stream: Stream, broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    run = f"whole-{stream.suffix}"
    sidecar = SidecarProcess(config_file(tmp_path_factory.mktemp(run), broker.bootstrap, stream.topics, run))
    try:
        wait_for(lambda: sidecar.progress() >= stream.produced, 90, "the uninterrupted run did not finish")
        time.sleep(0.5)  # one more verdict evaluation after the last batch
        shown = figures(sidecar)
    finally:
        assert sidecar.terminate() == 0
    return shown


def test_sigkill_at_random_points_then_restart_gives_the_uninterrupted_figures(
    stream: Stream, uninterrupted: dict[str, Any], broker: EmbeddedBroker, tmp_path: Path
) -> None:
    run = f"killed-{stream.suffix}"
    # A checkpoint after nearly every batch: consuming slows to seconds, so the kills land mid-stream,
    # many of them inside a checkpoint being written.
    config = config_file(tmp_path / run, broker.bootstrap, stream.topics, run, checkpoint_interval_s=0.001)
    rng = random.Random(stream.suffix)
    targets = sorted(rng.uniform(0.05, 0.9) * stream.produced for _ in range(4))
    settings = parse_config(yaml.safe_load(config.read_text()), {})
    kills: list[tuple[int, int]] = []  # (progress seen just before the kill, consumed in the checkpoint after it)
    for target in targets:
        sidecar = SidecarProcess(config)
        if kills:
            # Resumed from the last checkpoint, not from zero.
            assert sidecar.progress() >= kills[-1][1]
        wait_for(lambda s=sidecar, t=target: s.progress() >= t, 60, "the sidecar stalled", pause_s=0.02)
        seen = sidecar.progress()
        sidecar.kill()
        kills.append((seen, consumed_in_checkpoint(settings)))
    # Killed before the end: the checkpoint left behind holds part of the stream.
    mid_stream = [checkpointed for _, checkpointed in kills if 0 < checkpointed < stream.produced]
    assert len(mid_stream) >= 3, f"too few kills landed mid-stream: {kills} of {stream.produced}"

    final = SidecarProcess(config)
    try:
        wait_for(lambda: final.progress() >= stream.produced, 90, "the restarted sidecar did not finish")
        time.sleep(0.5)
        shown = figures(final)
    finally:
        started = time.monotonic()
        assert final.terminate() == 0, "the sidecar did not exit 0 on SIGTERM"
        assert time.monotonic() - started < 10
    found = differences(shown, uninterrupted)
    assert found == [], "\n".join(found)
    # The last checkpoint, written at shutdown, holds everything.
    assert consumed_in_checkpoint(settings) == stream.produced
    # Dead letters are at least once: every malformed message is on the topic, some maybe twice.
    letters = read_topic(broker.bootstrap, f"dead.{run}")
    origins = {(dict(m.headers())["driftgate.source.topic"], int(dict(m.headers())["driftgate.source.offset"]))
               for m in letters}
    assert len(origins) == stream.malformed <= len(letters)


# -- the broker goes away ---------------------------------------------------------------------


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A broker of this test alone: it is stopped and started again."""
    with EmbeddedBroker(log_path=tmp_path / "tansu.log") as running:
        yield running


def recreate_topics(bootstrap: str, topics: dict[str, dict[str, str]], run: str) -> None:
    inputs = [t for roles in topics.values() for t in roles.values()]
    ensure_topics(bootstrap, inputs, partitions=PARTITIONS)
    ensure_topics(bootstrap, [f"dead.{run}", f"verdicts.{run}", "driftgate.spotcheck"])


def readiness(sidecar: SidecarProcess) -> tuple[int, str]:
    response = httpx.get(f"{sidecar.url}/readyz", timeout=5)
    return response.status_code, response.json()["reason"]


def test_broker_restart_mid_stream_readyz_goes_503_and_back_and_the_new_stream_is_consumed(
    own_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    run = f"outage-{uuid.uuid4().hex[:8]}"
    topics = make_topics(run)
    recreate_topics(own_broker.bootstrap, topics, run)
    first, _ = produce(own_broker.bootstrap, topics, seed=1, scale=0.2)
    sidecar = SidecarProcess(config_file(tmp_path, own_broker.bootstrap, topics, run))
    try:
        wait_for(lambda: sidecar.progress() >= first, 60, "the first phase was not consumed")
        assert sidecar.progress() == first
        wait_for(lambda: readiness(sidecar)[0] == 200, 30, "not ready with the broker up")

        own_broker.stop()
        wait_for(lambda: readiness(sidecar)[0] == 503, 30, "/readyz stayed 200 without a broker")
        reason = readiness(sidecar)[1]
        assert own_broker.bootstrap in reason and "cannot be reached" in reason, reason
        assert httpx.get(f"{sidecar.url}/healthz", timeout=5).status_code == 200
        assert sidecar.process.poll() is None
        time.sleep(1.0)  # a while without a broker

        # The broker comes back empty (memory storage): recreate the topics, produce a fresh, smaller stream.
        own_broker.start()
        recreate_topics(own_broker.bootstrap, topics, run)
        second, _ = produce(own_broker.bootstrap, topics, seed=2, scale=0.1)
        wait_for(lambda: readiness(sidecar)[0] == 200, 60, "/readyz did not come back to 200")
        wait_for(lambda: sidecar.progress() >= first + second, 60, "the second phase was not consumed")
        assert sidecar.progress() == first + second
    finally:
        assert sidecar.terminate() == 0


def test_a_broker_absent_at_start_is_waited_for(tmp_path: Path) -> None:
    broker = EmbeddedBroker(port=free_port(), log_path=tmp_path / "tansu.log")
    run = f"late-{uuid.uuid4().hex[:8]}"
    topics = make_topics(run)
    sidecar = SidecarProcess(config_file(tmp_path, broker.bootstrap, topics, run))
    try:
        status, reason = readiness(sidecar)
        assert status == 503 and reason, reason
        time.sleep(1.5)
        assert sidecar.process.poll() is None and readiness(sidecar)[0] == 503
        broker.start()
        recreate_topics(broker.bootstrap, topics, run)
        produced, _ = produce(broker.bootstrap, topics, seed=3, scale=0.05)
        wait_for(lambda: readiness(sidecar)[0] == 200, 60, "/readyz did not become 200 once the broker came")
        wait_for(lambda: sidecar.progress() >= produced, 60, "nothing was consumed once the broker came")
    finally:
        try:
            assert sidecar.terminate() == 0
        finally:
            broker.stop()
