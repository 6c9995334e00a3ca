"""`driftgate run` as a process for the end-to-end tests: started on a config, healthy, stopped with SIGTERM."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from confluent_kafka import Producer

from monitor.embedded.loopback import free_port
from monitor.kafka.topics import ensure_topics

TOKEN_ENV = "DRIFTGATE_API_TOKEN"
ROLES = ("live", "canary", "feedback")


@dataclass
class RunTopics:
    """A run's own topics, created on the broker: ``<prefix>.<deployment>.<role>.<random>`` and outputs."""

    inputs: dict[str, dict[str, str]]  # deployment -> role -> topic
    outputs: dict[str, str]  # the kafka section's deadletter_topic, verdicts_topic, spotcheck_topic
    group_id: str


def fresh_topics(bootstrap: str, prefix: str, deployments: Iterable[str]) -> RunTopics:
    suffix = uuid.uuid4().hex[:8]
    inputs = {name: {role: f"{prefix}.{name}.{role}.{suffix}" for role in ROLES} for name in deployments}
    outputs = {f"{kind}_topic": f"{prefix}.{kind}.{suffix}" for kind in ("deadletter", "verdicts", "spotcheck")}
    ensure_topics(bootstrap, [t for by_role in inputs.values() for t in by_role.values()] + list(outputs.values()))
    return RunTopics(inputs, outputs, f"{prefix}-{suffix}")


# run_config evaluates verdicts every 0.2 s and polls for at most 0.2 s: after the last event is
# counted, a verdict on everything comes within 0.4 s; this waits for it with room to spare.
VERDICT_SETTLE_S = 1.0


def run_config(
    bootstrap: str, topics: RunTopics, deployments: list[dict[str, Any]], **sections: dict[str, Any]
) -> dict[str, Any]:
    """A config that reads ``topics`` from the start, serves on a free port and evaluates every 0.2 s;
    each of ``sections`` is merged into the section of its name."""
    config: dict[str, Any] = {
        "kafka": {"bootstrap_servers": bootstrap, "start_from": "earliest", "partition_assignment": "static",
                  "group_id": topics.group_id, "poll_timeout_s": 0.2, **topics.outputs},
        "api": {"port": free_port()},
        "verdict_interval_s": 0.2,
        "deployments": deployments,
    }
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values}
    return config


@dataclass
class SidecarProcess:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path


@contextmanager
def sidecar_process(config: dict[str, Any], directory: Path, token: str | None = None) -> Iterator[SidecarProcess]:
    """A sidecar on ``config`` (written to ``directory``), answering /healthz; on leaving, it must exit 0 on SIGTERM."""
    path = directory / "driftgate.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    if token is not None:
        env[TOKEN_ENV] = token
    log_path = directory / "sidecar.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "--config", str(path)], stdout=log, stderr=subprocess.STDOUT,
            env=env,
        )
        url = f"http://127.0.0.1:{config['api']['port']}"
        try:
            wait_healthy(url, process)
            yield SidecarProcess(url, process, log_path)
        finally:
            process.terminate()
            try:
                assert process.wait(30) == 0, "the sidecar did not exit 0 on SIGTERM"
            finally:
                if process.poll() is None:
                    process.kill()


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, "the sidecar exited"
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the sidecar at {url} did not come up")


def get_json(url: str, path: str, token: str | None = None, timeout_s: float = 10) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(f"{url}{path}", headers=headers, timeout=timeout_s)
    response.raise_for_status()
    return response.json()


def produce_events(bootstrap: str, topics: Mapping[str, str], events: Iterable[tuple[str, str, bytes]]) -> Counter[str]:
    """Produce (role, key, value) events, each to its role's topic; returns how many of each role."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    counts: Counter[str] = Counter()
    for role, key, value in events:
        producer.produce(topics[role], value, key.encode())
        counts[role] += 1
    assert producer.flush(30) == 0
    return counts


def wait_all_read(
    url: str, produced: Mapping[str, Mapping[str, int]], token: str | None = None, timeout_s: float = 90
) -> None:
    """Wait until each deployment's event counts by role are what was produced, and then until
    verdicts have been evaluated on all of them (the verdict read just as the last batch is
    counted may be the one evaluated before it)."""
    deadline = time.monotonic() + timeout_s
    for name, counts in produced.items():
        while get_json(url, f"/v1/deployments/{name}/metrics", token)["events"] != dict(counts):
            assert time.monotonic() < deadline, f"the sidecar did not read every event of {name}"
            time.sleep(0.3)
    time.sleep(VERDICT_SETTLE_S)
