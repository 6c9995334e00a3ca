"""Event-time alignment of input partitions: how far each may be read ahead of the others.

Catching up a backlog (a first start from ``earliest``, a restart after downtime), a
consumer gets whatever its fetches bring, and one topic can run minutes or hours of
traffic ahead of another. The live answers of a million requests would then wait in
the join for canary answers still far back in their topic, and leave it, evicted,
before those arrive. So, as Kafka Streams does for its joins, records are handed on
in message-time order across partitions, give or take ``max_lead_s``: a record more
than that ahead of the slowest partition that still has records to fetch is held
back here until that partition catches up. The slowest partition's records always
pass, so reading always goes on; a partition that has caught up holds no one back.
A partition newly read (assigned, or sought) whose position is not known yet holds
everyone back until its first records come, for at most ``start_grace_s``: a client's
prefetch queue may hand out a whole other topic before them. A partition holding
``max_held_bytes`` of records is paused at the client until half have passed, which
bounds the memory this takes.

Message time is the Kafka record timestamp (the producer's CreateTime, or the broker's
LogAppendTime): no record is parsed here. Records without one pass at once.

Held records are not yet processed, so the positions committed and checkpointed never
pass them: a restart reads them again. Pure: the Kafka sources feed it what they read
and apply its pause and resume decisions.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from itertools import islice

from monitor.core.records import Record

PartitionKey = tuple[str, int]
# While records are held, how often the partitions' progress is looked at again when nothing new comes.
HELD_RECHECK_S = 0.05


@dataclass
class EventTimeAlignment:
    """Holds back records too far ahead in message time, and says which partitions to pause."""

    max_lead_s: float
    max_held_bytes: int = 16 * 1024 * 1024
    start_grace_s: float = 5.0
    # partition -> message time (epoch seconds) of the last record fetched from it
    heads: dict[PartitionKey, float] = field(default_factory=dict)
    # partition -> offset after the last record fetched from it
    fetched: dict[PartitionKey, int] = field(default_factory=dict)
    # partition -> log end offset, as the client last heard it
    ends: dict[PartitionKey, int] = field(default_factory=dict)
    held: dict[PartitionKey, deque[Record]] = field(default_factory=dict)
    held_bytes: dict[PartitionKey, int] = field(default_factory=dict)
    paused: set[PartitionKey] = field(default_factory=set)
    # partition -> monotonic time until which it is waited for: read from a position not known yet
    starting: dict[PartitionKey, float] = field(default_factory=dict)
    # Whether the last admit left records due now (over its cap): the next may go without new fetches.
    due_left: bool = False

    @property
    def enabled(self) -> bool:
        return self.max_lead_s > 0

    def started(self, keys: list[PartitionKey], now: float) -> None:
        """These partitions are read from a position not known yet (newly assigned, or sought)."""
        self.forget(keys)
        for key in keys:
            self.starting[key] = now + self.start_grace_s

    def admit(self, records: list[Record], now: float, max_records: int | None = None) -> list[Record]:
        """Of a batch just fetched (in offset order per partition), the records to process now,
        with any held ones whose turn has come, at most ``max_records`` beyond the batch's own
        size; the rest are kept for a later call. ``now`` is a monotonic clock, for the grace of
        partitions not heard from yet."""
        if not self.enabled:
            return records  # nothing to keep track of
        self.due_left = False
        last = {(record.topic, record.partition): record for record in records}
        for key, record in last.items():
            self.fetched[key] = record.offset + 1
            self.starting.pop(key, None)
            if record.timestamp is not None:
                self.heads[key] = record.timestamp
        cap = max(len(records), max_records or 0) if max_records is not None else None
        if self._still_starting(now):
            return self._release(records, None, float("-inf"), cap)
        pacer = self._pacer()
        if pacer is None:
            return self._release(records, None, float("inf"), cap) if self.held else records
        limit = self.heads[pacer] + self.max_lead_s
        if not self.held and all(
            record.timestamp is None or record.timestamp <= limit for record in last.values()
        ):
            return records  # the common case: nothing ahead, nothing waiting
        return self._release(records, pacer, limit, cap)

    def _still_starting(self, now: float) -> bool:
        """Whether a partition not heard from yet may still have older records coming."""
        for key, deadline in list(self.starting.items()):
            # An empty partition (end 0) has nothing to wait for.
            if now >= deadline or self.ends.get(key) == 0:
                del self.starting[key]
        return bool(self.starting)

    def _pacer(self) -> PartitionKey | None:
        """The partition furthest behind in message time among those with records left to fetch."""
        behind = [
            (self.heads[key], key)
            for key, end in self.ends.items()
            if key in self.heads and end > self.fetched.get(key, end)
        ]
        return min(behind)[1] if behind else None

    def _release(
        self, records: list[Record], pacer: PartitionKey | None, limit: float, cap: int | None
    ) -> list[Record]:
        """Queue the batch, then take from each queue what is due."""
        held, held_bytes = self.held, self.held_bytes
        for record in records:
            key = (record.topic, record.partition)
            queue = held.get(key)
            if queue is None:
                queue = held[key] = deque()
                held_bytes[key] = 0
            queue.append(record)
            held_bytes[key] += _size(record)
        runs: list[tuple[PartitionKey, list[Record]]] = []
        for key, queue in held.items():
            # No run can give more than the cap: scanning past it would only scan the same records
            # again at the next poll (a partition far ahead holds tens of thousands).
            due = queue if cap is None else islice(queue, cap)
            if key == pacer:
                run = list(due)  # the pacer always moves on, whatever its timestamps do
            else:
                run = []
                for record in due:
                    if record.timestamp is not None and record.timestamp > limit:
                        break
                    run.append(record)
            if run:
                runs.append((key, run))
        # Run after run, the earliest first: each partition's records stay in offset order (the
        # positions depend on it); a full merge by time would cost more than it brings, since
        # one poll's records are far fewer than the join holds.
        runs.sort(key=lambda item: _time(item[1][0]))
        ready: list[Record] = []
        for key, run in runs:
            if cap is not None and len(ready) + len(run) > cap:
                run = run[: cap - len(ready)]
                self.due_left = True
            if not run:
                break
            ready.extend(run)
            # A run is a prefix of its queue: taken off it, and its size, run by run.
            queue = held[key]
            if len(run) == len(queue):
                del held[key], held_bytes[key]
            else:
                popleft = queue.popleft
                for _ in range(len(run)):
                    popleft()
                held_bytes[key] -= sum(map(_size, run))
        return ready

    def wait_s(self, remaining_s: float) -> float:
        """How long the next fetch may wait for new records, of the ``remaining_s`` a poll has.

        Not at all when held records are due already; briefly when records are held, since
        they may fall due with no new record (a partition reaching its end, a start grace
        running out); else all of it.
        """
        if self.due_left:
            return 0.0
        if self.held:
            return min(remaining_s, HELD_RECHECK_S)
        return remaining_s

    def decide(self) -> tuple[list[PartitionKey], list[PartitionKey]]:
        """The partitions to pause now (too much held) and to resume now (half of it passed)."""
        half = self.max_held_bytes // 2
        pause = sorted(
            key for key, size in self.held_bytes.items() if key not in self.paused and size >= self.max_held_bytes
        )
        resume = sorted(key for key in self.paused if self.held_bytes.get(key, 0) <= half)
        return pause, resume

    def applied(self, paused: list[PartitionKey], resumed: list[PartitionKey]) -> None:
        """Record that the client paused and resumed these partitions."""
        self.paused.update(paused)
        self.paused.difference_update(resumed)

    def forget(self, keys: list[PartitionKey]) -> None:
        """Drop what is known and held of partitions no longer read here, or read from elsewhere
        after a seek (their held records will be fetched again from the new position)."""
        for key in keys:
            self.heads.pop(key, None)
            self.fetched.pop(key, None)
            self.ends.pop(key, None)
            self.held.pop(key, None)
            self.held_bytes.pop(key, None)
            self.paused.discard(key)
            self.starting.pop(key, None)


def _time(record: Record) -> float:
    return record.timestamp if record.timestamp is not None else float("-inf")


def _size(record: Record) -> int:
    """What a held record costs, roughly: its value and key, and the object around them."""
    return len(record.value or b"") + len(record.key or b"") + 100
