"""The Kafka sources on the real broker, with each client: what is read, from where, and when ready.

Partitions are assigned directly (``static``), because a new consumer group takes about
20 s to get its first message on the embedded broker; one test covers group mode.
"""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from monitor.config import KafkaSettings
from monitor.core.records import Record
from monitor.core.state.join import RequestJoin
from monitor.embedded.broker import EmbeddedBroker
from monitor.embedded.loopback import free_port
from monitor.kafka.connect import open_source
from monitor.kafka.source import Source
from monitor.kafka.topics import ensure_topics

CLIENTS = ["confluent", "kafka-python"]
BASE_TS_MS = 1_780_000_000_000


def _settings(bootstrap: str, client: str, **overrides: Any) -> KafkaSettings:
    values: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "client": client,
        "partition_assignment": "static",
        "start_from": "earliest",
        "group_id": f"g-{uuid.uuid4().hex[:12]}",
        **overrides,
    }
    return KafkaSettings(**values)


def _produce(bootstrap: str, topic: str, count: int, partitions: int = 1, start: int = 0) -> None:
    """Produce ``count`` messages round-robin over the partitions: key k<i>, value v<i>, timestamp BASE+i ms."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(start, start + count):
        producer.produce(
            topic, f"v{i}".encode(), f"k{i}".encode(), partition=i % partitions, timestamp=BASE_TS_MS + i
        )
    assert producer.flush(10) == 0


def _drain(source: Source, expected: int, timeout_s: float = 20) -> list[Record]:
    """Poll until ``expected`` records came (or time is up), then once more to catch any surplus."""
    records: list[Record] = []
    deadline = time.monotonic() + timeout_s
    while len(records) < expected and time.monotonic() < deadline:
        records.extend(source.poll(1000, 0.2))
    records.extend(source.poll(1000, 0.5))
    return records


def _offsets(records: list[Record]) -> list[int]:
    return [record.offset for record in records]


@pytest.fixture
def topic(broker: EmbeddedBroker, topic_name: str) -> str:
    ensure_topics(broker.bootstrap, [topic_name])
    return topic_name


@pytest.mark.integration
@pytest.mark.parametrize("client", CLIENTS)
def test_reads_every_message_with_its_metadata(broker: EmbeddedBroker, topic: str, client: str) -> None:
    _produce(broker.bootstrap, topic, 40)
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    producer.produce(topic, None, None, timestamp=BASE_TS_MS + 40)  # no key, no value (a tombstone)
    assert producer.flush(10) == 0
    source = open_source(_settings(broker.bootstrap, client), [topic])
    try:
        records = _drain(source, 41)
    finally:
        source.close()
    expected = [
        Record(topic, 0, i, f"k{i}".encode(), f"v{i}".encode(), (BASE_TS_MS + i) / 1000) for i in range(40)
    ]
    expected.append(Record(topic, 0, 40, None, None, (BASE_TS_MS + 40) / 1000))
    assert records == expected


@pytest.mark.integration
@pytest.mark.parametrize("client", CLIENTS)
def test_a_new_source_resumes_after_the_committed_offsets(broker: EmbeddedBroker, topic: str, client: str) -> None:
    settings = _settings(broker.bootstrap, client)
    _produce(broker.bootstrap, topic, 30)

    first = open_source(settings, [topic])
    assert _offsets(_drain(first, 30)) == list(range(30))
    first.commit({(topic, 0): 20})  # as if only the first 20 had made it into the state
    first.close()

    second = open_source(settings, [topic])
    assert _offsets(_drain(second, 10)) == list(range(20, 30))
    second.commit({(topic, 0): 30})
    second.close()

    _produce(broker.bootstrap, topic, 5, start=30)
    third = open_source(settings, [topic])
    try:
        assert _offsets(_drain(third, 5)) == list(range(30, 35))
    finally:
        third.close()


@pytest.mark.integration
@pytest.mark.parametrize("client", CLIENTS)
def test_seek_before_and_after_assignment(broker: EmbeddedBroker, topic: str, client: str) -> None:
    _produce(broker.bootstrap, topic, 20)
    source = open_source(_settings(broker.bootstrap, client), [topic])
    try:
        source.seek({(topic, 0): 15})  # before the first poll: nothing is assigned yet
        assert _offsets(_drain(source, 5)) == list(range(15, 20))
        source.seek({(topic, 0): 3})  # assigned and read to the end
        assert _offsets(_drain(source, 17)) == list(range(3, 20))
    finally:
        source.close()


@pytest.mark.integration
@pytest.mark.parametrize("client", CLIENTS)
def test_seek_right_after_assignment(broker: EmbeddedBroker, topic: str, client: str) -> None:
    _produce(broker.bootstrap, topic, 20)
    source = open_source(_settings(broker.bootstrap, client), [topic])
    try:
        records = source.poll(1, 5)  # assigns, and reads at most one record
        assert _offsets(records) == [0]
        source.seek({(topic, 0): 12})
        assert _offsets(_drain(source, 8)) == list(range(12, 20))
    finally:
        source.close()


@pytest.mark.integration
@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("start_from", ["earliest", "latest"])
def test_start_from_applies_to_a_group_without_offsets(
    broker: EmbeddedBroker, topic: str, client: str, start_from: str
) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(10):
        producer.produce(topic, f"old{i}".encode())
        # One message per produce request: Tansu 0.6 reports the end of a partition as the
        # first offset of its last batch + 1, which would make "latest" re-read that batch.
        assert producer.flush(10) == 0
    source = open_source(_settings(broker.bootstrap, client, start_from=start_from), [topic])
    try:
        before = _drain(source, 10 if start_from == "earliest" else 0, timeout_s=5)
        assert source.ready()[0]
        for i in range(5):
            producer.produce(topic, f"new{i}".encode())
        assert producer.flush(10) == 0
        after = _drain(source, 5)
    finally:
        source.close()
    values = [record.value for record in before + after]
    old = [f"old{i}".encode() for i in range(10)] if start_from == "earliest" else []
    assert values == old + [f"new{i}".encode() for i in range(5)]


@pytest.mark.integration
@pytest.mark.parametrize("client", CLIENTS)
def test_reads_every_partition(broker: EmbeddedBroker, topic_name: str, client: str) -> None:
    ensure_topics(broker.bootstrap, [topic_name], partitions=3)
    _produce(broker.bootstrap, topic_name, 90, partitions=3)
    source = open_source(_settings(broker.bootstrap, client), [topic_name])
    try:
        records = _drain(source, 90)
        assert source.assigned() == {(topic_name, 0), (topic_name, 1), (topic_name, 2)}
    finally:
        source.close()
    for partition in range(3):
        mine = [record for record in records if record.partition == partition]
        assert _offsets(mine) == list(range(30))
        assert [record.value for record in mine] == [f"v{i}".encode() for i in range(partition, 90, 3)]


@pytest.mark.integration
@pytest.mark.parametrize("client", CLIENTS)
def test_ready_once_every_partition_of_every_topic_is_assigned(
    broker: EmbeddedBroker, topic: str, client: str
) -> None:
    later = f"{topic}-later"
    source = open_source(_settings(broker.bootstrap, client), [topic, later])
    try:
        ok, reason = source.ready()
        assert not ok and f"waiting for partition assignment of {topic}, {later}" in reason
        deadline = time.monotonic() + 5
        while (topic, 0) not in source.assigned() and time.monotonic() < deadline:
            source.poll(100, 0.2)
        ok, reason = source.ready()
        assert not ok and f"waiting for partition assignment of {later}" in reason and f"{topic}," not in reason
        ensure_topics(broker.bootstrap, [later], partitions=2)
        deadline = time.monotonic() + 10
        while not source.ready()[0] and time.monotonic() < deadline:
            source.poll(100, 0.2)
        assert source.ready()[0], source.ready()[1]
        assert source.assigned() == {(topic, 0), (later, 0), (later, 1)}
    finally:
        source.close()
    assert source.ready() == (False, "the Kafka consumer is closed")


@pytest.mark.integration
@pytest.mark.parametrize("client", CLIENTS)
def test_not_ready_and_quiet_without_a_broker(client: str, caplog: pytest.LogCaptureFixture) -> None:
    bootstrap = f"127.0.0.1:{free_port()}"
    options = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
               "sasl.username": "driftgate", "sasl.password": "s3cret-Pa55"}
    caplog.set_level(logging.DEBUG)
    source = open_source(_settings(bootstrap, client, options=options), ["predictions.live"])
    try:
        started = time.monotonic()
        for _ in range(5):
            assert source.poll(100, 0.2) == []
        assert time.monotonic() - started < 8  # poll keeps roughly to its timeout
        ok, reason = source.ready()
    finally:
        source.close()
    assert not ok
    assert bootstrap in reason
    assert "s3cret-Pa55" not in caplog.text


@pytest.mark.integration
@pytest.mark.parametrize("client", CLIENTS)
def test_a_broker_that_goes_away_shows_in_ready_and_poll_never_raises(client: str, tmp_path: Path) -> None:
    own = EmbeddedBroker(stop_grace_s=0.5, log_path=tmp_path / "tansu.log").start()
    try:
        ensure_topics(own.bootstrap, ["flaky"])
        _produce(own.bootstrap, "flaky", 5)
        source = open_source(_settings(own.bootstrap, client), ["flaky"])
        try:
            assert len(_drain(source, 5)) == 5
            assert source.ready()[0]
            own.stop()
            deadline = time.monotonic() + 15
            while source.ready()[0] and time.monotonic() < deadline:
                assert source.poll(100, 0.2) == []
            ok, reason = source.ready()
            assert not ok and own.bootstrap in reason
            own.start()
            ensure_topics(own.bootstrap, ["flaky"])  # memory storage: the topic went with the broker
            _produce(own.bootstrap, "flaky", 10, start=100)
            records: list[Record] = []
            deadline = time.monotonic() + 30
            while not (records and source.ready()[0]) and time.monotonic() < deadline:
                records.extend(source.poll(100, 0.2))
            assert source.ready()[0], source.ready()[1]
            # Where it resumes in the recreated topic depends on the client; that it reads again does not.
            assert records and {r.value for r in records} <= {f"v{i}".encode() for i in range(100, 110)}
        finally:
            source.close()
    finally:
        own.stop()


@pytest.mark.integration
def test_group_mode_with_both_clients(broker: EmbeddedBroker, topic_name: str) -> None:
    """The one group-mode test: each client joins its own new group, both at once (~23 s on Tansu)."""
    ensure_topics(broker.bootstrap, [topic_name], partitions=2)
    _produce(broker.bootstrap, topic_name, 20, partitions=2)  # offsets 0..9 in each partition
    settings = {client: _settings(broker.bootstrap, client, partition_assignment="group") for client in CLIENTS}
    sources = {client: open_source(settings[client], [topic_name]) for client in CLIENTS}
    try:
        for source in sources.values():
            ok, reason = source.ready()
            assert not ok and "consumer group" in reason
            source.seek({(topic_name, 1): 6})  # a checkpoint restored before the group assigns
        # One thread per source, each polling back to back as the sidecar does: kafka-python
        # 3.0 drops a join that completes while no poll() is waiting, and joins again.
        with ThreadPoolExecutor(len(CLIENTS)) as pool:
            futures = {client: pool.submit(_drain, sources[client], 14, 60) for client in CLIENTS}
            records = {client: future.result() for client, future in futures.items()}
        for client, source in sources.items():
            assert source.ready()[0], f"{client}: {source.ready()[1]}"
            assert source.assigned() == {(topic_name, 0), (topic_name, 1)}
            got = sorted((record.partition, record.offset) for record in records[client])
            assert got == [(0, i) for i in range(10)] + [(1, i) for i in range(6, 10)], client
            source.commit({(topic_name, 0): 10, (topic_name, 1): 10})
    finally:
        for source in sources.values():
            source.close()
    # The commits reached each group: a reader in the same group starts right after them.
    _produce(broker.bootstrap, topic_name, 2, partitions=2, start=20)
    for client in CLIENTS:
        static = open_source(settings[client].model_copy(update={"partition_assignment": "static"}), [topic_name])
        try:
            got = sorted((record.partition, record.offset) for record in _drain(static, 2))
        finally:
            static.close()
        assert got == [(0, 10), (1, 10)], client


def _produce_answers(bootstrap: str, topic: str, count: int, pad: int) -> None:
    """Request ids r<i> (padded to ``pad`` bytes) stamped BASE + 100 ms * i: one answer per request."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(count):
        producer.produce(topic, f"r{i}".ljust(pad).encode(), None, timestamp=BASE_TS_MS + 100 * i)
        if i % 1000 == 0:
            producer.poll(0)
    assert producer.flush(20) == 0


@pytest.mark.integration
@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("max_lead_s", [2.0, 0.0])
def test_alignment_keeps_a_backlog_of_two_topics_together_in_message_time(
    broker: EmbeddedBroker, topic_name: str, client: str, max_lead_s: float
) -> None:
    """Live answers are large and canary answers small, so each fetch brings many more canary
    answers: unaligned, the canary topic runs hundreds of requests ahead and a small join
    evicts them; aligned, every request pairs."""
    live, canary = f"{topic_name}.live", f"{topic_name}.canary"
    ensure_topics(broker.bootstrap, [live, canary])
    count = 4000
    _produce_answers(broker.bootstrap, live, count, pad=2000)
    _produce_answers(broker.bootstrap, canary, count, pad=8)
    join = RequestJoin(max_open=1000, ttl_s=1e9)
    source = open_source(_settings(broker.bootstrap, client, max_lead_s=max_lead_s), [live, canary])
    try:
        for record in _drain(source, 2 * count, timeout_s=60):
            request_id = (record.value or b"").decode().strip()
            if record.topic == live:
                join.add_live(request_id, "a", record.timestamp or 0.0)
            else:
                join.add_canary(request_id, "a", "v2", record.timestamp or 0.0)
    finally:
        source.close()
    assert join.stats.paired + join.stats.evicted + len(join) >= count
    if max_lead_s > 0:
        assert (join.stats.paired, join.stats.evicted) == (count, 0)
    else:
        assert join.stats.evicted > 0  # what the alignment prevents
