"""The embedded broker: starts on a free port, restarts on the same one, fails loudly, stops for sure."""

from __future__ import annotations

import socket
import stat
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer

from monitor.embedded.broker import EmbeddedBroker
from monitor.errors import DriftgateError
from monitor.kafka.topics import ensure_topics, topic_partitions

pytestmark = pytest.mark.integration


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _script(tmp_path: Path, body: str) -> str:
    """A stand-in for the broker binary: a shell script with this body."""
    path = tmp_path / "fake-broker"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_session_broker_answers_kafka_requests(broker: EmbeddedBroker, topic_name: str) -> None:
    host, _, port = broker.bootstrap.partition(":")
    assert host == "127.0.0.1" and int(port) == broker.port > 0
    assert broker.running
    assert ensure_topics(broker.bootstrap, [topic_name]) == [topic_name]
    assert topic_partitions(broker.bootstrap, topic_name) == [0]


def test_restart_on_the_same_port_loses_topics(tmp_path: Path) -> None:
    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log")
    with broker:
        bootstrap = broker.bootstrap
        ensure_topics(bootstrap, ["kept-in-memory"])
        # A connected client makes Tansu linger on SIGTERM: stop() must still end it.
        producer = Producer({"bootstrap.servers": bootstrap})
        producer.produce("kept-in-memory", b"x")
        assert producer.flush(10) == 0
        broker.stop()
        assert not broker.running
        assert not _accepts(broker.port)
        broker.start()
        assert broker.bootstrap == bootstrap
        assert _accepts(broker.port)
        with pytest.raises(DriftgateError, match="kept-in-memory"):
            topic_partitions(bootstrap, "kept-in-memory", timeout_s=5)
        assert ensure_topics(bootstrap, ["kept-in-memory"]) == ["kept-in-memory"]
    assert not broker.running
    assert "tansu" in (tmp_path / "tansu.log").read_text().lower()


def test_stop_kills_a_broker_that_ignores_terminate(tmp_path: Path) -> None:
    broker = EmbeddedBroker(stop_grace_s=0.5, log_path=tmp_path / "tansu.log").start()
    client = socket.create_connection(("127.0.0.1", broker.port))  # keeps Tansu from exiting on SIGTERM
    try:
        started = time.monotonic()
        broker.stop()
        assert time.monotonic() - started < 5
        assert not broker.running
    finally:
        client.close()


def test_a_broker_that_exits_at_start_is_reported_with_its_log(tmp_path: Path) -> None:
    binary = _script(tmp_path, "echo 'cannot bind: boom' >&2\nexit 3")
    broker = EmbeddedBroker(binary=binary, log_path=tmp_path / "broker.log")
    with pytest.raises(DriftgateError, match=r"exited with code 3(.|\n)*cannot bind: boom"):
        broker.start()
    assert not broker.running


def test_a_broker_that_never_listens_times_out_and_is_stopped(tmp_path: Path) -> None:
    binary = _script(tmp_path, "echo 'starting slowly'\nexec sleep 60")
    broker = EmbeddedBroker(binary=binary, start_timeout_s=0.5, stop_grace_s=0.5, log_path=tmp_path / "b.log")
    started = time.monotonic()
    with pytest.raises(DriftgateError, match=r"did not answer on port(.|\n)*starting slowly"):
        broker.start()
    assert time.monotonic() - started < 5
    assert not broker.running


def test_bootstrap_before_start_is_an_error() -> None:
    with pytest.raises(DriftgateError, match="start it first"):
        _ = EmbeddedBroker().bootstrap
