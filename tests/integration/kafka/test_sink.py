"""The Kafka sink on the real broker, with each client: messages and dead letters arrive whole."""

from __future__ import annotations

import time
from typing import Any

import pytest
from confluent_kafka import Consumer, Message, TopicPartition

from monitor.config import KafkaSettings
from monitor.core.records import DeadLetter, Record
from monitor.embedded.broker import EmbeddedBroker
from monitor.embedded.loopback import free_port
from monitor.kafka.sink import KafkaSink
from monitor.kafka.topics import ensure_topics

CLIENTS = ["confluent", "kafka-python"]


def _read_back(bootstrap: str, topic: str, expected: int, timeout_s: float = 15) -> list[Message[Any, Any]]:
    """Every message of partition 0 of ``topic`` from the start, read with a plain confluent consumer."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "sink-tests", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    messages: list[Message[Any, Any]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            messages.extend(m for m in consumer.consume(100, 0.2) if m.error() is None)
        messages.extend(m for m in consumer.consume(100, 0.3) if m.error() is None)  # any surplus
    finally:
        consumer.close()
    return messages


@pytest.fixture
def topic(broker: EmbeddedBroker, topic_name: str) -> str:
    ensure_topics(broker.bootstrap, [topic_name])
    return topic_name


@pytest.mark.integration
@pytest.mark.parametrize("client", CLIENTS)
def test_sent_messages_arrive_with_key_and_headers(broker: EmbeddedBroker, topic: str, client: str) -> None:
    sink = KafkaSink(KafkaSettings(bootstrap_servers=broker.bootstrap, client=client))
    for i in range(20):
        sink.send(topic, f"k{i}".encode(), f"v{i}".encode(), [("n", str(i).encode())])
    sink.send(topic, None, b"no key, no headers")
    assert sink.flush(10) == 0
    assert (sink.delivered, sink.failed) == (21, 0)
    sink.close()
    messages = _read_back(broker.bootstrap, topic, 21)
    assert [(m.key(), m.value(), m.headers()) for m in messages[:20]] == [
        (f"k{i}".encode(), f"v{i}".encode(), [("n", str(i).encode())]) for i in range(20)
    ]
    assert (messages[20].key(), messages[20].value(), messages[20].headers()) == (None, b"no key, no headers", None)
    assert len(messages) == 21


@pytest.mark.integration
@pytest.mark.parametrize("client", CLIENTS)
def test_dead_letters_keep_the_original_bytes_key_and_origin(broker: EmbeddedBroker, topic: str, client: str) -> None:
    sink = KafkaSink(KafkaSettings(bootstrap_servers=broker.bootstrap, client=client, max_message_bytes=1024))
    garbage = DeadLetter(
        Record("predictions.live", 2, 41, b"r-81723", b"\xff\xfe not json", 1_780_000_000.0),
        reason="not_json", detail="Expecting value: line 1 column 1 (char 0)", deployment="doc-classifier",
    )
    empty = DeadLetter(Record("feedback", 0, 7, None, None), reason="not_json", detail="no value")
    huge = DeadLetter(Record("predictions.canary", 1, 3, b"r-9", b"x" * 5000), reason="too_large", detail="5000 B")
    for letter in (garbage, empty, huge):
        sink.dead_letter(letter, topic)
    assert sink.flush(10) == 0
    assert (sink.delivered, sink.failed) == (3, 0)
    sink.close()
    messages = _read_back(broker.bootstrap, topic, 3)
    assert len(messages) == 3
    assert (messages[0].key(), messages[0].value(), messages[0].headers()) == (
        b"r-81723", b"\xff\xfe not json", garbage.headers()
    )
    assert (messages[1].key(), messages[1].value(), messages[1].headers()) == (None, b"", empty.headers())
    # Over the size the sidecar decodes, but not over what the broker carries: sent whole.
    assert (messages[2].key(), messages[2].value(), messages[2].headers()) == (b"r-9", b"x" * 5000, huge.headers())

@pytest.mark.integration
@pytest.mark.parametrize("client", CLIENTS)
def test_delivery_failures_are_counted_not_raised(client: str) -> None:
    bootstrap = f"127.0.0.1:{free_port()}"
    options = {"message.timeout.ms": 500} if client == "confluent" else {}
    sink = KafkaSink(KafkaSettings(bootstrap_servers=bootstrap, client=client, options=options))
    started = time.monotonic()
    for i in range(3):
        sink.send("driftgate.verdicts", b"k", f"v{i}".encode())
    assert time.monotonic() - started < 5  # send() does not wait for the broker
    assert sink.flush(5) == 0
    assert (sink.delivered, sink.failed) == (0, 3)
    sink.close()
