"""The Kafka source on kafka-python: the pure-Python client, for where librdkafka cannot go."""

from __future__ import annotations

import logging
import time
from typing import Any

import kafka
import kafka.errors

from monitor.config import KafkaSettings
from monitor.core.records import Record
from monitor.errors import ConfigError, DriftgateError
from monitor.kafka.options import kafka_python_options, unreachable
from monitor.kafka.source import (
    PROBE_INTERVAL_S,
    AssignedSource,
    PartitionKey,
    Positions,
    log_opened,
)

log = logging.getLogger(__name__)

COMMIT_TIMEOUT_S = 10.0


class KafkaPythonSource(AssignedSource):
    """A Source on the pure-Python kafka-python client.

    kafka-python connects when its consumer is built and raises if it cannot, so the
    consumer is built lazily: at once if the broker answers, else retried from poll()
    with a growing pause, while ready() says why not.
    """

    def __init__(self, settings: KafkaSettings, topics: list[str]) -> None:
        super().__init__(settings, topics)
        self._config: dict[str, Any] = {
            **kafka_python_options(settings.options, "consumer"),
            "bootstrap_servers": settings.bootstrap_servers.split(","),
            "group_id": settings.group_id,
            "auto_offset_reset": settings.start_from,
            "enable_auto_commit": False,
            "bootstrap_timeout_ms": 5000,
        }
        self._consumer: Any = None
        self._retry_in_s = 1.0
        self._next_connect = 0.0
        self._next_probe = 0.0
        log_opened(settings, self.topics)
        self._connect()

    def poll(self, max_records: int, timeout_s: float) -> list[Record]:
        """Return up to ``max_records`` records, waiting at most about ``timeout_s`` for the first."""
        if self._closed:
            raise DriftgateError("poll() on a closed Kafka source")
        deadline = time.monotonic() + timeout_s
        if (self._consumer is None and not self._connect()) or (self.static and not self._assign_static()):
            time.sleep(max(0.0, deadline - time.monotonic()))
            return []
        try:
            batches = self._consumer.poll(timeout_ms=int(self._wait_s(deadline) * 1000), max_records=max_records)
        except kafka.errors.KafkaError as error:
            self._note_error(f"{type(error).__name__}: {error}")
            return []
        # Hot path: one Record per message, no logging.
        records: list[Record] = []
        append = records.append
        for batch in batches.values():
            for message in batch:
                ts = message.timestamp
                append(
                    Record(
                        message.topic,
                        message.partition,
                        message.offset,
                        message.key,
                        message.value,
                        ts / 1000.0 if ts is not None and ts >= 0 else None,
                    )
                )
        if self._down or not records:
            self._check_connections(bool(records))
        return self._align(records, self._log_ends(), max_records)

    def _log_ends(self) -> dict[PartitionKey, int]:
        """The high watermark of each assigned partition from the last fetch answers (no request)."""
        ends = {}
        for key in self._assigned:
            end = self._consumer.highwater(kafka.TopicPartition(*key))
            if end is not None:
                ends[key] = int(end)
        return ends

    def _pause_resume(self, pause: list[PartitionKey], resume: list[PartitionKey]) -> None:
        if pause:
            self._consumer.pause(*[kafka.TopicPartition(t, p) for t, p in pause])
        if resume:
            self._consumer.resume(*[kafka.TopicPartition(t, p) for t, p in resume])

    def commit(self, positions: Positions) -> None:
        """Commit next-offsets-to-read of the partitions this source holds (synchronously)."""
        offsets = {
            kafka.TopicPartition(topic, partition): kafka.OffsetAndMetadata(offset, "", -1)
            for (topic, partition), offset in positions.items()
            if (topic, partition) in self._assigned
        }
        if not offsets or self._consumer is None:
            return
        try:
            self._consumer.commit(offsets, timeout_ms=int(COMMIT_TIMEOUT_S * 1000))
        except kafka.errors.KafkaError as error:
            self._note_error(f"cannot commit offsets: {type(error).__name__}: {error}")

    def close(self) -> None:
        """Leave the group and close the consumer."""
        if not self._closed:
            self._closed = True
            if self._consumer is not None:
                self._consumer.close(autocommit=False)

    def _check_connections(self, got_records: bool) -> None:
        """Notice a broker that went away (or came back): kafka-python keeps that to itself but
        for its connection count, read while polls come back empty, every few seconds."""
        if got_records:
            self._down = False
            return
        now = time.monotonic()
        if now < self._next_probe:
            return
        self._next_probe = now + PROBE_INTERVAL_S
        connections = _connection_count(self._consumer)
        if connections == 0:
            self._note_error("kafka-python has no connection to any broker", down=True)
        elif connections and self._down:
            self._down = False
            log.info("Kafka broker reachable again")

    def _connect(self) -> bool:
        """Build the consumer if the broker can be reached; False (and why, in ready()) if not yet."""
        now = time.monotonic()
        if now < self._next_connect:
            return False
        problem = unreachable(self.settings.bootstrap_servers)
        if problem is None:
            try:
                self._consumer = kafka.KafkaConsumer(**self._config)
            except kafka.errors.KafkaConfigurationError as error:
                raise ConfigError("kafka.options", str(error)) from None
            except kafka.errors.KafkaError as error:
                problem = f"{type(error).__name__}: {error}"
        if problem is not None:
            self._note_error(problem, down=True)
            self._next_connect = now + self._retry_in_s
            self._retry_in_s = min(self._retry_in_s * 2, 60.0)
            return False
        self._down = False
        if not self.static:
            self._consumer.subscribe(self.topics, listener=_Listener(self))
        return True

    def _assign_static(self) -> bool:
        """Assign the partitions of topics that exist now; True when there is something to read."""
        if self._metadata_due():
            try:
                for topic in self._unassigned_topics():
                    partitions = self._consumer.partitions_for_topic(topic)
                    if partitions:
                        self._partitions[topic] = set(partitions)
                    else:
                        self._note_error(f"topic {topic} does not exist (yet)")
            except kafka.errors.KafkaError as error:
                self._note_error(f"cannot read topic metadata: {type(error).__name__}: {error}")
            wanted = [(t, p) for t, partitions in self._partitions.items() for p in sorted(partitions)]
            new = [key for key in wanted if key not in self._assigned]
            if new:
                # kafka-python's assign() replaces the assignment but keeps the positions of partitions kept.
                self._consumer.assign([kafka.TopicPartition(t, p) for t, p in wanted])
                self._on_assigned(new)
        if self._pending_seeks:
            self._apply_pending_seeks()
        return bool(self._assigned)

    def _apply_pending_seeks(self) -> None:
        if self._consumer is None:
            return
        for key in [key for key in self._pending_seeks if key in self._assigned]:
            self._consumer.seek(kafka.TopicPartition(*key), self._pending_seeks.pop(key))
            self._restart_alignment(key)

    def _restart_alignment(self, key: PartitionKey) -> None:
        """A partition read from elsewhere now: no longer paused, its position unknown until it is read."""
        if key in self.alignment.paused:
            self._consumer.resume(kafka.TopicPartition(*key))
        self.alignment.started([key], time.monotonic())


class _Listener(kafka.ConsumerRebalanceListener):  # type: ignore[misc]  # kafka-python is untyped
    """Keeps a KafkaPythonSource's assignment right through group rebalances."""

    def __init__(self, source: KafkaPythonSource) -> None:
        self._source = source

    def on_partitions_revoked(self, revoked: Any) -> None:
        self._source._on_revoked([(p.topic, p.partition) for p in revoked])

    def on_partitions_assigned(self, assigned: Any) -> None:
        self._source._on_assigned([(p.topic, p.partition) for p in assigned])
        self._source._apply_pending_seeks()

    def on_partitions_lost(self, lost: Any) -> None:
        self.on_partitions_revoked(lost)


def _connection_count(consumer: Any) -> float | None:
    """kafka-python's count of open broker connections (from its metrics), None if it has none."""
    for group in consumer.metrics().values():
        count = group.get("connection-count")
        if count is not None:
            return float(count)
    return None
