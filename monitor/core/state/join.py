"""The request-id join of live and canary predictions, bounded in size and in event time.

Each request waits here until the other model's answer arrives. Memory stays bounded
whatever the stream: at most ``max_open`` requests are held (the oldest is evicted
first) and a request older than ``ttl_s`` in event time is expired. Every request
that leaves without its other half is counted, never dropped silently.

Eviction order is arrival order, which is event-time order for a well-behaved
producer; an out-of-order old request may outlive its TTL by the lag of the
requests in front of it (it is still evicted by the size bound).
"""

from __future__ import annotations

from collections import OrderedDict

import msgspec
import msgspec.structs


class OpenRequest(msgspec.Struct, gc=False, array_like=True):
    """One request's answers so far (a msgspec struct: one is built per request, in C; no cycles to track;
    stored as an array, since a full join holds a hundred thousand of them)."""

    ts: float
    live_label: str | None = None
    canary_label: str | None = None
    canary_version: str | None = None
    # the first answer's scores, kept so a disagreement can be shown with both models' scores
    scores: dict[str, float] | None = None


class JoinStats(msgspec.Struct):
    """What became of requests: paired, evicted for space, expired by TTL, duplicated."""

    paired: int = 0
    evicted: int = 0
    expired_live_only: int = 0
    expired_canary_only: int = 0
    duplicates: int = 0

    def merge(self, other: JoinStats) -> JoinStats:
        self.paired += other.paired
        self.evicted += other.evicted
        self.expired_live_only += other.expired_live_only
        self.expired_canary_only += other.expired_canary_only
        self.duplicates += other.duplicates
        return self


class RequestJoin(msgspec.Struct):
    """Pairs live and canary answers by request id.

    >>> join = RequestJoin(max_open=10, ttl_s=60)
    >>> join.add_live("r1", "invoice", ts=0.0) is None
    True
    >>> pair = join.add_canary("r1", "other", "v2", ts=1.0)
    >>> (pair.live_label, pair.canary_label, len(join))
    ('invoice', 'other', 0)
    """

    max_open: int
    ttl_s: float
    open: OrderedDict[str, OpenRequest] = msgspec.field(default_factory=OrderedDict)
    # Requests already paired (id -> event time), bounded like `open`: a re-delivered answer
    # (Kafka delivers at least once) is then a duplicate, not the start of a second pair.
    paired_ids: OrderedDict[str, float] = msgspec.field(default_factory=OrderedDict)
    stats: JoinStats = msgspec.field(default_factory=JoinStats)

    def __len__(self) -> int:
        return len(self.open)

    # add_live / add_canary are on the hot path: one dict lookup, no allocation for a pair.
    def add_live(
        self, request_id: str, label: str, ts: float, scores: dict[str, float] | None = None
    ) -> OpenRequest | None:
        """Record live's answer; returns the completed request when canary's is already here."""
        entry = self.open.get(request_id)
        if entry is None:
            if request_id in self.paired_ids:
                self.stats.duplicates += 1
            else:
                self._insert(request_id, OpenRequest(ts, label, None, None, scores))
            return None
        if entry.live_label is not None:
            self.stats.duplicates += 1
            return None
        entry.live_label = label
        self._pair(request_id, entry)
        return entry

    def add_canary(
        self, request_id: str, label: str, version: str | None, ts: float, scores: dict[str, float] | None = None
    ) -> OpenRequest | None:
        """Record canary's answer; returns the completed request when live's is already here."""
        entry = self.open.get(request_id)
        if entry is None:
            if request_id in self.paired_ids:
                self.stats.duplicates += 1
            else:
                self._insert(request_id, OpenRequest(ts, None, label, version, scores))
            return None
        if entry.canary_label is not None:
            self.stats.duplicates += 1
            return None
        entry.canary_label = label
        entry.canary_version = version
        self._pair(request_id, entry)
        return entry

    def _pair(self, request_id: str, entry: OpenRequest) -> None:
        del self.open[request_id]
        self.stats.paired += 1
        paired_ids = self.paired_ids
        paired_ids[request_id] = entry.ts
        while len(paired_ids) > self.max_open:
            paired_ids.popitem(last=False)

    def _insert(self, request_id: str, entry: OpenRequest) -> None:
        # `while`, not `if`: after a restart with a smaller bound, the surplus leaves as new ones come.
        self.open[request_id] = entry
        while len(self.open) > self.max_open:
            self.open.popitem(last=False)
            self.stats.evicted += 1

    def expire(self, now: float) -> int:
        """Drop requests older than the TTL at event time ``now``; returns how many."""
        horizon = now - self.ttl_s
        paired_ids = self.paired_ids
        while paired_ids and next(iter(paired_ids.values())) < horizon:
            paired_ids.popitem(last=False)
        expired = 0
        open_requests = self.open
        while open_requests:
            request_id, entry = next(iter(open_requests.items()))
            if entry.ts >= horizon:
                break
            del open_requests[request_id]
            if entry.live_label is not None:
                self.stats.expired_live_only += 1
            else:
                self.stats.expired_canary_only += 1
            expired += 1
        return expired

    def merge(self, other: RequestJoin) -> RequestJoin:
        """Add another join's requests and figures (replicas' requests are disjoint when the
        topics are co-partitioned by request id)."""
        for request_id, entry in other.open.items():
            # a copy: the other join goes on changing its own entries
            self.open.setdefault(request_id, msgspec.structs.replace(entry))
        for request_id, ts in other.paired_ids.items():
            self.paired_ids.setdefault(request_id, ts)
        self.stats.merge(other.stats)
        return self
