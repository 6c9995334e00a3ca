"""Real Prometheus and Alertmanager around a real sidecar, one of each per test session.

``driftgate run`` (a process, on the session's embedded broker) reads two deployments:
``collapse`` (the simulator's collapsed canary: no_go) and ``good`` (an equal retrain),
with some malformed messages among them. A real Prometheus (Debian's package, on a
loopback port) scrapes it every second and evaluates ``alerts/driftgate.rules.yml``; a
real Alertmanager with ``alerts/alertmanager.yml`` sends to a small HTTP receiver in this
process. Only two things differ from what ships, both said where they are done: the
rules' ``for`` durations are cut to seconds, and the receivers' URLs point at loopback.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from confluent_kafka import Producer

from integration.sidecar_process import fresh_topics, run_config, sidecar_process
from monitor.embedded.prometheus import (
    ALERTMANAGER_BINARIES,
    ALERTS_DIR,
    INSTALL_HINT,
    AlertmanagerServer,
    PrometheusServer,
    load_alertmanager_config,
)
from monitor.embedded.simulator import CLASSES, TrafficSimulator

# Enough requests for every figure the dashboard shows, feature drift included (its bins are
# learned from a sample of live's first rows).
SCENARIOS = {"collapse": 12000, "good": 12000}
MALFORMED = [b"not json", b"[1, 2]", b'{"deployment": "good", "label": "invoice"}']
# The rules' `for` durations (1m to 15m) cut to this, so that the session need not wait
# minutes; promtool's unit tests (alerts/tests/) check the real durations.
FOR_IN_TESTS = "2s"


def require_binaries() -> None:
    """Skip, saying why, when Debian's prometheus / prometheus-alertmanager are not installed."""
    missing = [name for name in ("prometheus", "promtool", "amtool") if shutil.which(name) is None]
    if all(shutil.which(name) is None for name in ALERTMANAGER_BINARIES):
        missing.append("prometheus-alertmanager")
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (`make prometheus` or {INSTALL_HINT})")


@dataclass
class Received:
    """What the loopback receiver got: JSON bodies by request path."""

    bodies: dict[str, list[Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, path: str, body: Any) -> None:
        with self.lock:
            self.bodies.setdefault(path, []).append(body)

    def at(self, path: str) -> list[Any]:
        with self.lock:
            return list(self.bodies.get(path, []))


@dataclass
class AlertReceiver:
    url: str
    received: Received


@pytest.fixture(scope="session")
def alert_receiver() -> Iterator[AlertReceiver]:
    """An HTTP server on loopback recording every POST (Alertmanager's webhook and Slack bodies)."""
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.add(self.path, json.loads(body))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:  # keep the test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield AlertReceiver(f"http://127.0.0.1:{server.server_address[1]}", received)
    server.shutdown()
    server.server_close()


@dataclass
class MonitoredSidecar:
    url: str
    target: str
    process: subprocess.Popen[bytes]


def _produce(bootstrap: str, topics: dict[str, dict[str, str]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for name, n_requests in SCENARIOS.items():
        simulator = TrafficSimulator(name, deployment=name, seed=11)
        for event in simulator.stream(n_requests, start_ts=1_800_000_000.0, rate_per_s=100):
            producer.produce(topics[name][event.role], orjson.dumps(event.payload), event.key.encode())
    for payload in MALFORMED:
        producer.produce(topics["good"]["live"], payload, b"bad")
    assert producer.flush(30) == 0


@pytest.fixture(scope="session")
def monitored_sidecar(broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MonitoredSidecar]:
    """``driftgate run`` reading the collapse and good scenarios (all produced at once)."""
    run = fresh_topics(broker.bootstrap, "prom", SCENARIOS)
    topics = run.inputs
    config = run_config(broker.bootstrap, run, [
        {"name": name, "topics": topics[name], "classes": list(CLASSES),
         "reference": {"class_distribution": {"invoice": 0.5, "contract": 0.3, "other": 0.2}}}
        for name in SCENARIOS
    ], state={"enabled": False})
    with sidecar_process(config, tmp_path_factory.mktemp("prom-sidecar")) as process:
        _produce(broker.bootstrap, topics)
        yield MonitoredSidecar(process.url, f"127.0.0.1:{config['api']['port']}", process.process)


def rules_for_tests(directory: Path) -> list[Path]:
    """Copies of the shipped rule files with every `for` cut to FOR_IN_TESTS, nothing else changed."""
    copies = []
    for source in sorted(ALERTS_DIR.glob("*.rules.yml")):
        rules = yaml.safe_load(source.read_text())
        for group in rules["groups"]:
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = FOR_IN_TESTS
        copy = directory / source.name
        copy.write_text(yaml.safe_dump(rules, sort_keys=False))
        copies.append(copy)
    return copies


@pytest.fixture(scope="session")
def alertmanager(alert_receiver: AlertReceiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
    AlertmanagerServer
]:
    """Alertmanager with the shipped routes; the deploy gate's webhook and the team's Slack URL on loopback."""
    require_binaries()
    config = load_alertmanager_config()
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = f"{alert_receiver.url}/{receiver['name']}"
        for slack in receiver.get("slack_configs", []):
            slack["api_url"] = f"{alert_receiver.url}/{receiver['name']}"
    server = AlertmanagerServer(tmp_path_factory.mktemp("alertmanager"), config)
    with server:
        yield server


@pytest.fixture(scope="session")
def prometheus(monitored_sidecar: MonitoredSidecar, alertmanager: AlertmanagerServer,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """Prometheus scraping the sidecar every second, with the rules, sending to the Alertmanager."""
    directory = tmp_path_factory.mktemp("prometheus")
    server = PrometheusServer(directory, [monitored_sidecar.target], rules_for_tests(directory),
                              [alertmanager.address], interval_s=1.0)
    with server:
        yield server
