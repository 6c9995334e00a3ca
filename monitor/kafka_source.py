"""Reading records from Kafka: the ``Source`` protocol, with confluent-kafka and kafka-python behind it.

Offsets are committed only when the caller says so (auto-commit is off in both
clients), after it has folded the records into its state, so every message is
processed at least once. ``poll`` is the hot path: it builds Records in a tight loop
and never raises for a broker that is away; such trouble is logged (rate-limited)
and shows in ``ready()``.

Partition assignment: ``static`` reads every partition of the input topics itself,
starting at the group's committed offset, else at ``start_from``; ``group`` lets the
consumer group assign partitions (start_from is then ``auto.offset.reset``).
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol

import kafka
import kafka.errors
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    OFFSET_INVALID,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from monitor.alignment import EventTimeAlignment
from monitor.config import KafkaSettings
from monitor.errors import ConfigError, DriftgateError
from monitor.kafka_topics import RateLimiter, kafka_error_text, librdkafka_logger
from monitor.records import Record

log = logging.getLogger(__name__)

PartitionKey = tuple[str, int]
Positions = dict[PartitionKey, int]

# Keys the settings own: taking them from ``options`` too would make two sources of truth,
# and auto-commit would break the at-least-once promise.
OWNED_OPTIONS = frozenset(
    {"bootstrap.servers", "group.id", "auto.offset.reset", "enable.auto.commit", "enable.auto.offset.store"}
)
COMMIT_TIMEOUT_S = 10.0
METADATA_RETRY_S = 1.0
PROBE_INTERVAL_S = 2.0
END_CHECK_INTERVAL_S = 2.0
# librdkafka consumer settings of ours, below what kafka.options sets.
CONSUMER_DEFAULTS: Mapping[str, Any] = {
    "enable.partition.eof": False,
    # librdkafka pauses a partition's fetching for this long once its local queue is
    # past queued.min.messages; at 1000 ms (the default) a consumer that keeps up
    # still stalls for a second now and then, which cuts throughput by up to 10x.
    "fetch.queue.backoff.ms": 20,
    # Small fetches per partition keep the live, canary and feedback topics moving
    # together when catching up a backlog (see monitor.alignment for the rest).
    "max.partition.fetch.bytes": 262_144,
    # The prefetched backlog held in memory, per partition.
    "queued.max.messages.kbytes": 8_192,
}
# librdkafka errors after which nothing can be read until something changes.
_BLOCKING_ERRORS = frozenset(
    {KafkaError._ALL_BROKERS_DOWN, KafkaError._AUTHENTICATION, KafkaError._RESOLVE, KafkaError._SSL}
)


class Source(Protocol):
    """Where records come from; ``positions`` map (topic, partition) to the next offset to read."""

    def poll(self, max_records: int, timeout_s: float) -> list[Record]: ...
    def commit(self, positions: Positions) -> None: ...
    def seek(self, positions: Positions) -> None: ...
    def assigned(self) -> set[PartitionKey]: ...
    def log_ends(self) -> dict[PartitionKey, int]: ...
    def ready(self) -> tuple[bool, str]: ...
    def close(self) -> None: ...


def open_source(settings: KafkaSettings, topics: list[str]) -> Source:
    """Return the source for ``settings.client`` reading ``topics``; no broker needs to be up yet."""
    if settings.client == "kafka-python":
        return KafkaPythonSource(settings, topics)
    return ConfluentSource(settings, topics)


class _Assignment:
    """What both sources track: which partitions they read, what is pending, and what went wrong."""

    def __init__(self, settings: KafkaSettings, topics: list[str]) -> None:
        if not topics:
            raise DriftgateError("a Kafka source needs at least one topic")
        _refuse_owned_options(settings.options)
        self.settings = settings
        self.topics = list(dict.fromkeys(topics))
        self.static = settings.partition_assignment == "static"
        self._assigned: set[PartitionKey] = set()
        self._partitions: dict[str, set[int]] = {}  # static mode: every partition of each topic
        self._group_assigned = False  # group mode: the group has handed out partitions once
        self._pending_seeks: Positions = {}
        self._next_metadata_check = 0.0
        self._last_error = ""
        self._down = False
        self._closed = False
        self._limiter = RateLimiter()
        self.alignment = EventTimeAlignment(settings.max_lead_s)
        self._ends: dict[PartitionKey, int] = {}

    def assigned(self) -> set[PartitionKey]:
        """The (topic, partition) pairs this source reads now."""
        return set(self._assigned)

    def log_ends(self) -> dict[PartitionKey, int]:
        """The log end offset of each partition read here, as of the last poll."""
        return dict(self._ends)

    def _wait_s(self, deadline: float) -> float:
        """How long a poll may wait for new records (less while the alignment holds some back)."""
        return self.alignment.wait_s(max(0.0, deadline - time.monotonic()))

    def _align(self, records: list[Record], ends: dict[PartitionKey, int], max_records: int) -> list[Record]:
        """Of the records a poll fetched, those whose turn has come in message time (see
        monitor.alignment); pauses the partitions holding too many, resumes them later."""
        alignment = self.alignment
        alignment.ends.update(ends)
        self._ends = dict(alignment.ends)
        records = alignment.admit(records, time.monotonic(), max_records)
        pause, resume = alignment.decide()
        if pause or resume:
            self._pause_resume(pause, resume)
            alignment.applied(pause, resume)
        return records

    def _pause_resume(self, pause: list[PartitionKey], resume: list[PartitionKey]) -> None:
        raise NotImplementedError

    def ready(self) -> tuple[bool, str]:
        """Whether every input partition is assigned (group mode: the group's share), and why not."""
        if self._closed:
            return False, "the Kafka consumer is closed"
        if self._down:
            return False, f"the Kafka broker at {self.settings.bootstrap_servers} cannot be reached: {self._last_error}"
        waiting = self._unassigned_topics()
        if waiting:
            group = f"the consumer group {self.settings.group_id!r} to assign partitions"
            what = "partition assignment" if self.static else group
            reason = f"waiting for {what} of {', '.join(waiting)}"
            return False, f"{reason} (last error: {self._last_error})" if self._last_error else reason
        return True, f"reading {len(self._assigned)} partitions of {', '.join(self.topics)}"

    def _unassigned_topics(self) -> list[str]:
        if not self.static:
            return [] if self._group_assigned else list(self.topics)
        return [
            topic
            for topic in self.topics
            if topic not in self._partitions
            or any((topic, partition) not in self._assigned for partition in self._partitions[topic])
        ]

    def _note_error(self, message: str, *, down: bool = False) -> None:
        """Remember the last broker problem for ready() and log it, at most once per key and interval."""
        self._last_error = message
        self._down = self._down or down
        held = self._limiter.allow(message[:60])
        if held is not None:
            log.warning("Kafka consumer problem: %s", message, extra={"held_back": held})

    def _on_assigned(self, keys: list[PartitionKey]) -> None:
        self._assigned.update(keys)
        self.alignment.started(keys, time.monotonic())
        self._group_assigned = True
        log.info("Kafka partitions assigned", extra={"partitions": _names(keys)})

    def _on_revoked(self, keys: list[PartitionKey]) -> None:
        self._assigned.difference_update(keys)
        self.alignment.forget(keys)
        log.info("Kafka partitions revoked", extra={"partitions": _names(keys)})

    def _metadata_due(self) -> bool:
        """Static mode only: whether to look for partitions not assigned yet (at most once per second)."""
        if not self.static or not self._unassigned_topics():
            return False
        now = time.monotonic()
        if now < self._next_metadata_check:
            return False
        self._next_metadata_check = now + METADATA_RETRY_S
        return True


class ConfluentSource(_Assignment):
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
        _log_opened(settings, self.topics)

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

    def seek(self, positions: Positions) -> None:
        """Read these partitions from these offsets next; kept until the partition is assigned."""
        self._pending_seeks.update(positions)
        self._apply_pending_seeks()

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


class KafkaPythonSource(_Assignment):
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
        _log_opened(settings, self.topics)
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

    def seek(self, positions: Positions) -> None:
        """Read these partitions from these offsets next; kept until the partition is assigned."""
        self._pending_seeks.update(positions)
        self._apply_pending_seeks()

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


# -- client options -------------------------------------------------------------------------

Role = Literal["consumer", "producer"]


def _flag(value: str | int | float | bool) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() in ("true", "1", "yes")


def _upper(value: str | int | float | bool) -> str:
    return str(value).upper()


def _hostname_check(value: str | int | float | bool) -> bool:
    return str(value).strip().lower() == "https"


def _acks(value: str | int | float | bool) -> int | str:
    text = str(value).strip().lower()
    return -1 if text == "all" else int(text)


# librdkafka (dotted) name -> (kafka-python keyword, conversion, roles it applies to).
KAFKA_PYTHON_OPTIONS: Mapping[str, tuple[str, Callable[[Any], Any], tuple[Role, ...]]] = {
    "security.protocol": ("security_protocol", _upper, ("consumer", "producer")),
    "sasl.mechanism": ("sasl_mechanism", _upper, ("consumer", "producer")),
    "sasl.mechanisms": ("sasl_mechanism", _upper, ("consumer", "producer")),
    "sasl.username": ("sasl_plain_username", str, ("consumer", "producer")),
    "sasl.password": ("sasl_plain_password", str, ("consumer", "producer")),
    "sasl.kerberos.service.name": ("sasl_kerberos_service_name", str, ("consumer", "producer")),
    "ssl.ca.location": ("ssl_cafile", str, ("consumer", "producer")),
    "ssl.certificate.location": ("ssl_certfile", str, ("consumer", "producer")),
    "ssl.key.location": ("ssl_keyfile", str, ("consumer", "producer")),
    "ssl.key.password": ("ssl_password", str, ("consumer", "producer")),
    "ssl.crl.location": ("ssl_crlfile", str, ("consumer", "producer")),
    "ssl.cipher.suites": ("ssl_ciphers", str, ("consumer", "producer")),
    "ssl.endpoint.identification.algorithm": ("ssl_check_hostname", _hostname_check, ("consumer", "producer")),
    "client.id": ("client_id", str, ("consumer", "producer")),
    "request.timeout.ms": ("request_timeout_ms", int, ("consumer", "producer")),
    "metadata.max.age.ms": ("metadata_max_age_ms", int, ("consumer", "producer")),
    "reconnect.backoff.ms": ("reconnect_backoff_ms", int, ("consumer", "producer")),
    "reconnect.backoff.max.ms": ("reconnect_backoff_max_ms", int, ("consumer", "producer")),
    "connections.max.idle.ms": ("connections_max_idle_ms", int, ("consumer", "producer")),
    "session.timeout.ms": ("session_timeout_ms", int, ("consumer",)),
    "heartbeat.interval.ms": ("heartbeat_interval_ms", int, ("consumer",)),
    "max.poll.interval.ms": ("max_poll_interval_ms", int, ("consumer",)),
    "fetch.min.bytes": ("fetch_min_bytes", int, ("consumer",)),
    "fetch.max.bytes": ("fetch_max_bytes", int, ("consumer",)),
    "fetch.wait.max.ms": ("fetch_max_wait_ms", int, ("consumer",)),
    "max.partition.fetch.bytes": ("max_partition_fetch_bytes", int, ("consumer",)),
    "isolation.level": ("isolation_level", str, ("consumer",)),
    "group.instance.id": ("group_instance_id", str, ("consumer",)),
    "acks": ("acks", _acks, ("producer",)),
    "linger.ms": ("linger_ms", int, ("producer",)),
    "compression.type": ("compression_type", str, ("producer",)),
    "message.max.bytes": ("max_request_size", int, ("producer",)),
    "enable.idempotence": ("enable_idempotence", _flag, ("producer",)),
}


def kafka_python_options(options: Mapping[str, str | int | float | bool], role: Role) -> dict[str, Any]:
    """Translate librdkafka-style ``options`` into kafka-python keywords for a consumer or producer.

    Options of the other role are skipped (one ``options`` map serves both); an option
    kafka-python has no equivalent for raises ConfigError naming it (never its value).
    """
    _refuse_owned_options(options)
    translated: dict[str, Any] = {}
    for name, value in options.items():
        entry = KAFKA_PYTHON_OPTIONS.get(name)
        if entry is None:
            raise ConfigError(
                f"kafka.options.{name}",
                "not supported with client kafka-python; supported: " + ", ".join(sorted(KAFKA_PYTHON_OPTIONS)),
            )
        keyword, convert, roles = entry
        if role not in roles:
            continue
        try:
            translated[keyword] = convert(value)
        except ValueError:
            raise ConfigError(f"kafka.options.{name}", "has a value of the wrong kind") from None
    return translated


def _refuse_owned_options(options: Mapping[str, object]) -> None:
    owned = sorted(OWNED_OPTIONS.intersection(options))
    if owned:
        raise ConfigError(
            f"kafka.options.{owned[0]}",
            "is set by driftgate from the kafka section (bootstrap_servers, group_id, start_from); "
            "auto-commit stays off",
        )


def unreachable(bootstrap_servers: str, timeout_s: float = 1.0) -> str | None:
    """None if a TCP connection to one of the bootstrap servers opens, else a sentence saying why not."""
    problems = []
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        host = host.strip("[]")
        try:
            with socket.create_connection((host, int(port)), timeout=timeout_s):
                return None
        except (OSError, ValueError) as error:
            problems.append(f"{server.strip()}: {getattr(error, 'strerror', None) or error}")
    return "cannot connect to the Kafka bootstrap servers: " + "; ".join(problems)


def _connection_count(consumer: Any) -> float | None:
    """kafka-python's count of open broker connections (from its metrics), None if it has none."""
    for group in consumer.metrics().values():
        count = group.get("connection-count")
        if count is not None:
            return float(count)
    return None


def _names(keys: list[PartitionKey]) -> list[str]:
    return [f"{topic}[{partition}]" for topic, partition in sorted(keys)]


def _log_opened(settings: KafkaSettings, topics: list[str]) -> None:
    # Option names only: their values may be secrets (sasl.password and the like).
    log.info(
        "Kafka source opened",
        extra={
            "client": settings.client,
            "bootstrap": settings.bootstrap_servers,
            "group_id": settings.group_id,
            "assignment": settings.partition_assignment,
            "start_from": settings.start_from,
            "topics": topics,
            "options": sorted(settings.options),
        },
    )
