"""Reading records from Kafka: the ``Source`` protocol, and what its sources on either client share.

Offsets are committed only when the caller says so (auto-commit is off in both
clients), after it has folded the records into its state, so every message is
processed at least once. ``poll`` is the hot path: it builds Records in a tight loop
and never raises for a broker that is away; such trouble is logged (rate-limited)
and shows in ``ready()``.

Partition assignment: ``static`` reads every partition of the input topics itself,
starting at the group's committed offset, else at ``start_from``; ``group`` lets the
consumer group assign partitions (start_from is then ``auto.offset.reset``).

The sources themselves: :mod:`monitor.kafka.confluent_source` (confluent-kafka, the default)
and :mod:`monitor.kafka.kafka_python_source` (kafka-python); :func:`monitor.kafka.connect.open_source`
opens the configured one.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

from monitor.config import KafkaSettings
from monitor.core.records import Record
from monitor.errors import DriftgateError
from monitor.kafka.alignment import EventTimeAlignment
from monitor.kafka.options import refuse_owned_options
from monitor.kafka.topics import RateLimiter

log = logging.getLogger(__name__)

PartitionKey = tuple[str, int]
Positions = dict[PartitionKey, int]

METADATA_RETRY_S = 1.0
PROBE_INTERVAL_S = 2.0


class Source(Protocol):
    """Where records come from; ``positions`` map (topic, partition) to the next offset to read."""

    def poll(self, max_records: int, timeout_s: float) -> list[Record]: ...
    def commit(self, positions: Positions) -> None: ...
    def seek(self, positions: Positions) -> None: ...
    def assigned(self) -> set[PartitionKey]: ...
    def log_ends(self) -> dict[PartitionKey, int]: ...
    def ready(self) -> tuple[bool, str]: ...
    def close(self) -> None: ...


class AssignedSource:
    """What both sources track: which partitions they read, what is pending, and what went wrong."""

    def __init__(self, settings: KafkaSettings, topics: list[str]) -> None:
        if not topics:
            raise DriftgateError("a Kafka source needs at least one topic")
        refuse_owned_options(settings.options)
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
        monitor.kafka.alignment); pauses the partitions holding too many, resumes them later."""
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

    def seek(self, positions: Positions) -> None:
        """Read these partitions from these offsets next; kept until the partition is assigned."""
        self._pending_seeks.update(positions)
        self._apply_pending_seeks()

    def _apply_pending_seeks(self) -> None:
        """Seek the partitions of the pending seeks that are assigned now (the client's own way)."""
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
        log.info("Kafka partitions assigned", extra={"partitions": partition_names(keys)})

    def _on_revoked(self, keys: list[PartitionKey]) -> None:
        self._assigned.difference_update(keys)
        self.alignment.forget(keys)
        log.info("Kafka partitions revoked", extra={"partitions": partition_names(keys)})

    def _metadata_due(self) -> bool:
        """Static mode only: whether to look for partitions not assigned yet (at most once per second)."""
        if not self.static or not self._unassigned_topics():
            return False
        now = time.monotonic()
        if now < self._next_metadata_check:
            return False
        self._next_metadata_check = now + METADATA_RETRY_S
        return True


def partition_names(keys: list[PartitionKey]) -> list[str]:
    return [f"{topic}[{partition}]" for topic, partition in sorted(keys)]


def log_opened(settings: KafkaSettings, topics: list[str]) -> None:
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
