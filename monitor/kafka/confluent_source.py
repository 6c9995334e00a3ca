"""The Kafka source on confluent-kafka (librdkafka): the fast one, and the default."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    OFFSET_INVALID,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from monitor.config import KafkaSettings
from monitor.core.records import Record
from monitor.errors import ConfigError, DriftgateError
from monitor.kafka.source import PROBE_INTERVAL_S, AssignedSource, PartitionKey, Positions, log_opened
from monitor.kafka.topics import kafka_error_text, librdkafka_logger

log = logging.getLogger(__name__)

END_CHECK_INTERVAL_S = 2.0
# librdkafka consumer settings of ours, below what kafka.options sets.
CONSUMER_DEFAULTS: Mapping[str, Any] = {
    "enable.partition.eof": False,
    # librdkafka pauses a partition's fetching for this long once its local queue is
    # past queued.min.messages; at 1000 ms (the default) a consumer that keeps up
    # still stalls for a second now and then, which cuts throughput by up to 10x.
    "fetch.queue.backoff.ms": 20,
    # Small fetches per partition keep the live, canary and feedback topics moving
    # together when catching up a backlog (see monitor.kafka.alignment for the rest).
    "max.partition.fetch.bytes": 262_144,
    # The prefetched backlog held in memory, per partition.
    "queued.max.messages.kbytes": 8_192,
}
# librdkafka errors after which nothing can be read until something changes.
_BLOCKING_ERRORS = frozenset(
    {KafkaError._ALL_BROKERS_DOWN, KafkaError._AUTHENTICATION, KafkaError._RESOLVE, KafkaError._SSL}
)


class ConfluentSource(AssignedSource):
    """A Source on confluent-kafka (librdkafka): the fast one, and the default."""

    def __init__(self, settings: KafkaSettings, topics: list[str]) -> None:
        super().__init__(settings, topics)
        config: dict[str, Any] = {
            **CONSUMER_DEFAULTS,
            **settings.options,
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": settings.group_id,
            "auto.offset.reset": settings.start_from,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "error_cb": self._on_client_error,
            "on_commit": self._on_commit,
            "logger": librdkafka_logger(),
        }
        strategy = str(config.get("partition.assignment.strategy", ""))
        self._cooperative = "cooperative" in strategy
        self._next_probe = 0.0
        self._next_end_check = 0.0
        try:
            self._consumer = Consumer(config)
        except KafkaException as error:  # an option librdkafka does not know, or a bad value
            raise ConfigError("kafka.options", kafka_error_text(error)) from None
        if not self.static:
            self._consumer.subscribe(
                self.topics, on_assign=self._group_assign, on_revoke=self._group_revoke, on_lost=self._group_revoke
            )
        log_opened(settings, self.topics)

    def poll(self, max_records: int, timeout_s: float) -> list[Record]:
        """Return up to ``max_records`` records, waiting at most about ``timeout_s`` for the first."""
        if self._closed:
            raise DriftgateError("poll() on a closed Kafka source")
        deadline = time.monotonic() + timeout_s
        if self._metadata_due():
            self._assign_static(timeout_s)
        if self._pending_seeks:
            self._apply_pending_seeks()
        try:
            messages = self._consumer.consume(num_messages=max_records, timeout=self._wait_s(deadline))
        except KafkaException as error:
            self._note_error(kafka_error_text(error))
            return []
        # Hot path: one Record per message, no logging, errors handed off.
        records: list[Record] = []
        append = records.append
        for message in messages:
            problem = message.error()
            if problem is not None:
                self._on_message_error(problem)
                continue
            ts_type, ts = message.timestamp()
            append(
                Record(
                    message.topic(),  # type: ignore[arg-type]  # set on every consumed message
                    message.partition(),  # type: ignore[arg-type]
                    message.offset(),  # type: ignore[arg-type]
                    message.key(),
                    message.value(),
                    ts / 1000.0 if ts_type else None,
                )
            )
        if self._down:
            self._check_recovered(bool(records))
        elif not records and self._assigned:
            self._reset_positions_past_the_end()
        records = self._align(records, self._log_ends(), max_records)
        if self._pending_seeks:
            # Group mode, a seek that could not be applied yet: what came before it is not wanted.
            records = [r for r in records if (r.topic, r.partition) not in self._pending_seeks]
        return records

    def commit(self, positions: Positions) -> None:
        """Commit next-offsets-to-read of the partitions this source holds (asynchronously)."""
        offsets = [
            TopicPartition(topic, partition, offset)
            for (topic, partition), offset in positions.items()
            if (topic, partition) in self._assigned
        ]
        if not offsets:
            return
        try:
            self._consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as error:
            self._note_error(f"cannot commit offsets: {kafka_error_text(error)}")

    def close(self) -> None:
        """Leave the group and close the consumer; in-flight commits are completed first by librdkafka."""
        if not self._closed:
            self._closed = True
            self._consumer.close()

    def _log_ends(self) -> dict[PartitionKey, int]:
        """The log end offset of each assigned partition, as the last fetch answers told (no request)."""
        ends = {}
        for topic, partition in self._assigned:
            try:
                _, end = self._consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
            except KafkaException:
                continue
            if end >= 0:
                ends[(topic, partition)] = end
        return ends

    def _pause_resume(self, pause: list[PartitionKey], resume: list[PartitionKey]) -> None:
        try:
            if pause:
                self._consumer.pause([TopicPartition(t, p) for t, p in pause])
            if resume:
                self._consumer.resume([TopicPartition(t, p) for t, p in resume])
        except KafkaException as error:
            self._note_error(f"cannot pause or resume partitions: {kafka_error_text(error)}")

    # -- assignment -------------------------------------------------------------------------

    def _assign_static(self, timeout_s: float) -> None:
        """Assign every partition of the topics whose metadata the broker now gives."""
        found: list[TopicPartition] = []
        for topic in self._unassigned_topics():
            try:
                metadata = self._consumer.list_topics(topic=topic, timeout=timeout_s).topics[topic]
            except KafkaException as error:
                self._note_error(f"cannot read the metadata of {topic}: {kafka_error_text(error)}")
                break
            if metadata.error is not None:
                self._note_error(f"topic {topic}: {metadata.error.str()}")
                continue
            self._partitions[topic] = set(metadata.partitions)
            for partition in sorted(metadata.partitions):
                if (topic, partition) not in self._assigned:
                    # OFFSET_INVALID: the group's committed offset, else auto.offset.reset.
                    offset = self._pending_seeks.pop((topic, partition), OFFSET_INVALID)
                    found.append(TopicPartition(topic, partition, offset))
        if found:
            self._consumer.incremental_assign(found)
            self._on_assigned([(p.topic, p.partition) for p in found])

    def _group_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for partition in partitions:
            offset = self._pending_seeks.pop((partition.topic, partition.partition), None)
            if offset is not None:
                partition.offset = offset
        # Assigning here (rather than letting the library do it) is what applies those offsets.
        if self._cooperative:
            consumer.incremental_assign(partitions)
        else:
            consumer.assign(partitions)
        self._on_assigned([(p.topic, p.partition) for p in partitions])

    def _group_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._on_revoked([(p.topic, p.partition) for p in partitions])

    def _apply_pending_seeks(self) -> None:
        due = [TopicPartition(t, p, o) for (t, p), o in self._pending_seeks.items() if (t, p) in self._assigned]
        if not due:
            return
        if self.static:
            # seek() fails with "Erroneous state" until a partition's fetcher has started;
            # re-assigning the partition at the offset works at any time.
            self._consumer.incremental_unassign(due)
            self._consumer.incremental_assign(due)
            applied = due
        else:
            applied = []
            for partition in due:
                try:
                    self._consumer.seek(partition)
                except KafkaException:
                    continue  # not fetching yet: tried again at the next poll
                applied.append(partition)
        for partition in applied:
            del self._pending_seeks[(partition.topic, partition.partition)]
        # Re-assigned (which also lifts a pause) or moved: what was known of them is void.
        self.alignment.started([(p.topic, p.partition) for p in applied], time.monotonic())

    # -- errors ------------------------------------------------------------------------------

    def _on_client_error(self, error: KafkaError) -> None:
        self._note_error(error.str(), down=error.code() in _BLOCKING_ERRORS or error.fatal())

    def _on_message_error(self, error: KafkaError) -> None:
        if error.code() != KafkaError._PARTITION_EOF:  # end of a partition is no problem
            self._note_error(error.str())

    def _on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        if error is not None:
            self._note_error(f"offset commit failed: {error.str()}")

    def _reset_positions_past_the_end(self) -> None:
        """Send partitions whose position lies past the end of their log back to ``start_from``.

        Kafka answers a fetch from such a position "offset out of range" and the client
        starts over; some Kafka-protocol brokers answer with an empty fetch instead (Tansu,
        whose memory storage loses its topics on restart), and the consumer would wait at
        the old offset for ever. The log end of the last fetch answer tells; checked while
        polls come back empty, at most every END_CHECK_INTERVAL_S.
        """
        now = time.monotonic()
        if now < self._next_end_check:
            return
        self._next_end_check = now + END_CHECK_INTERVAL_S
        try:
            positions = self._consumer.position([TopicPartition(t, p) for t, p in self._assigned])
            ends = [self._consumer.get_watermark_offsets(tp, cached=True) for tp in positions]
        except KafkaException:
            return
        restart = OFFSET_BEGINNING if self.settings.start_from == "earliest" else OFFSET_END
        for partition, (_, end) in zip(positions, ends, strict=True):
            if 0 <= end < partition.offset:
                log.warning(
                    "Kafka partition read past the end of its log (was the topic recreated?): reading it from %s",
                    self.settings.start_from,
                    extra={"partition": f"{partition.topic}[{partition.partition}]", "position": partition.offset,
                           "end": end},
                )
                self._pending_seeks[(partition.topic, partition.partition)] = restart
        if self._pending_seeks:
            self._apply_pending_seeks()

    def _check_recovered(self, got_records: bool) -> None:
        """After a blocking error: records, or a metadata answer every few seconds, mean the broker is back."""
        now = time.monotonic()
        if not got_records:
            if now < self._next_probe:
                return
            self._next_probe = now + PROBE_INTERVAL_S
            try:
                self._consumer.list_topics(topic=self.topics[0], timeout=1.0)
            except KafkaException:
                return
        self._down = False
        log.info("Kafka broker reachable again")
