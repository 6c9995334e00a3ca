"""The running sidecar: a consumer thread feeding the state, verdicts evaluated beside it.

This module wires the pure core (ingest, state, verdicts) to the edges: a Kafka source,
a Kafka sink, and the attachments (monitor.sidecar.attachment) told of what happens. The
HTTP API and the Prometheus collector read typed views (:meth:`Sidecar.snapshot`,
monitor.sidecar.views) and :attr:`Sidecar.verdicts`, which never block the consumer for
longer than one copy; what people ask of it is in :attr:`Sidecar.actions`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Protocol

import orjson
from prometheus_client.registry import Collector

from monitor.config import Settings
from monitor.core.ingest import UNROUTED, Ingest
from monitor.core.profile import ReferenceProfile
from monitor.core.records import DeadLetter, Record
from monitor.core.state.spotcheck import SpotcheckCase
from monitor.core.verdict import Verdict, evaluate
from monitor.errors import CheckpointError
from monitor.reports.profile_file import load_profiles
from monitor.sidecar.actions import Actions, spotcheck_event
from monitor.sidecar.attachment import Attachment
from monitor.sidecar.checkpoint import (
    BackgroundWriter,
    CheckpointStore,
    encode,
    open_store,
    restore_ingest,
)
from monitor.sidecar.views import DeploymentView, deployment_view

log = logging.getLogger(__name__)


class Source(Protocol):
    """Where records come from (see monitor.kafka.source)."""

    def poll(self, max_records: int, timeout_s: float) -> list[Record]: ...
    def commit(self, positions: dict[tuple[str, int], int]) -> None: ...
    def seek(self, positions: dict[tuple[str, int], int]) -> None: ...
    def log_ends(self) -> dict[tuple[str, int], int]: ...
    def ready(self) -> tuple[bool, str]: ...
    def close(self) -> None: ...


class Sink(Protocol):
    """Where dead letters and verdict changes go (see monitor.kafka.sink)."""

    def send(
        self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]] | None = None
    ) -> None: ...
    def dead_letter(self, letter: DeadLetter, topic: str) -> None: ...
    def flush(self, timeout_s: float = 10) -> int: ...
    def close(self) -> None: ...


class Sidecar:
    """Consumes, folds into state, evaluates verdicts and publishes their changes."""

    def __init__(
        self,
        settings: Settings,
        source_factory: Callable[[], Source],
        sink_factory: Callable[[], Sink],
        clock: Callable[[], float] = time.time,
        checkpoints: CheckpointStore | None = None,
        profiles: Mapping[str, ReferenceProfile] | None = None,
    ) -> None:
        self.settings = settings
        # The reference profiles, read once here: the core receives them as data.
        self.profiles = load_profiles(settings) if profiles is None else profiles
        self.ingest = Ingest(settings, profiles=self.profiles)
        self.verdicts: dict[str, Verdict] = {}
        self.attachments: list[Attachment] = []  # the sinks told of verdicts, cases and batches
        self.actions = Actions(self)
        self.started_at = clock()
        self.clock = clock
        # Guards the ingest and its states: the consumer thread folds in under it, readers copy under it.
        self.lock = threading.Lock()
        self._source_factory = source_factory
        self._sink_factory = sink_factory
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._source: Source | None = None
        self._sink: Sink | None = None
        self._last_error = ""
        # Checkpoints (None: opened from settings.state at start). A partition's offsets are
        # committed to Kafka only once a checkpoint holds it, so Kafka is never ahead of a
        # checkpoint for a partition the checkpoint does not know.
        self._store = checkpoints
        self._writer: BackgroundWriter[tuple[set[tuple[str, int]], int]] | None = None
        self._checkpointed: set[tuple[str, int]] = set()  # partitions the last saved checkpoint holds
        self._snapshotted: set[tuple[str, int]] = set()  # partitions the last snapshot taken holds
        self._consumed_at_snapshot = 0
        self._checkpoint_due = 0.0
        # Resumed positions not yet confirmed by a record read from them (see _check_resumed_positions).
        self._unconfirmed: dict[tuple[str, int], int] = {}
        self._republish = False  # after a resume: publish the current verdicts once (at least once)
        self.evaluate_verdicts()

    # -- life cycle ---------------------------------------------------------------------------

    def attach(self, attachment: Attachment) -> None:
        """Tell an attachment of what happens from now on; it is started and stopped with the sidecar."""
        self.attachments.append(attachment)

    @property
    def sink(self) -> Sink | None:
        """The Kafka producer, once connected."""
        return self._sink

    def start(self) -> None:
        """Start the attachments, resume from the last checkpoint, then consume in a background thread.

        A checkpoint that cannot be read stops nothing but the consuming: the process
        stays up and /readyz says why (resuming without it would lose its counts).
        """
        for attachment in self.attachments:
            attachment.start()
        if not self._resume():
            return
        self._thread = threading.Thread(target=self._run, name="driftgate-consumer", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 20.0) -> None:
        """Stop consuming, checkpoint, publish the last verdicts, flush and close the edges."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            # Before the flush, which may wait for an absent broker until the grace period is over.
            self.checkpoint()
        if self._writer is not None and not self._writer.close(timeout_s):
            log.error("the last checkpoint was not written in time", extra={"timeout_s": timeout_s})
        try:
            self.evaluate_verdicts()
        except Exception:  # the shutdown goes on: the edges are still flushed and closed
            log.exception("cannot evaluate the last verdicts at shutdown")
        if self._sink is not None:
            left = self._sink.flush(timeout_s)
            if left:
                log.warning("messages not delivered at shutdown", extra={"undelivered": left})
            self._sink.close()
        if self._source is not None:
            self._source.close()
        # Last: the final verdicts were just announced to them.
        for attachment in self.attachments:
            try:
                attachment.stop(timeout_s)
            except Exception:
                log.exception("an attachment failed to stop", extra={"attachment": type(attachment).__name__})

    def ready(self) -> tuple[bool, str]:
        """Whether every input partition is assigned (and why not)."""
        if self._source is None:
            return False, self._last_error or "the Kafka consumer is starting"
        return self._source.ready()

    def _resume(self) -> bool:
        """Take over the last checkpoint's state; False (and why, in ready()) if it cannot be read."""
        try:
            if self._store is None:
                self._store = open_store(self.settings)
            snapshot, ingest = None, None
            if self._store is not None and (snapshot := self._store.load()) is not None:
                ingest = restore_ingest(snapshot, self.settings, self.profiles, self._store.origin)
        except CheckpointError as error:
            self._last_error = f"checkpoint refused: {error}"
            log.error("checkpoint refused; nothing is consumed", extra={"error": str(error)})
            return False
        if self._store is not None:
            self._writer = BackgroundWriter(self._store, self._saved)
        if ingest is not None:
            self._take_over(ingest)
            self._checkpointed = self._snapshotted = set(ingest.positions)
            self._consumed_at_snapshot = ingest.consumed
            self._unconfirmed = dict(ingest.positions)
            self._republish = True
            log.info(
                "resumed from checkpoint",
                extra={"consumed": ingest.consumed, "partitions": len(ingest.positions), "bytes": len(snapshot or b"")},
            )
        return True

    def _take_over(self, ingest: Ingest) -> None:
        """Replace the ingest and its verdicts without announcing them (nothing new has happened)."""
        with self.lock:
            self.ingest = ingest
            self.verdicts = {d.name: evaluate(d, ingest.states[d.name]) for d in self.settings.deployments}

    def _connect(self) -> bool:
        """Start the Kafka source and sink, retrying with a growing pause; False once stop() is called."""
        pause = 1.0
        while not self._stop.is_set():
            try:
                source = self._source_factory()
                try:
                    sink = self._sink_factory()
                except Exception:
                    source.close()
                    raise
            except Exception as error:  # the process stays up to say why on /readyz, and tries again
                self._last_error = f"cannot start the Kafka client: {error}"
                log.warning("cannot start the Kafka client; trying again", extra={"error": str(error), "in_s": pause})
                self._stop.wait(pause)
                pause = min(pause * 2, 10.0)
                continue
            self._source, self._sink = source, sink
            self._last_error = ""
            return True
        return False

    def _check_resumed_positions(self, records: list[Record]) -> None:
        """Drop the resumed state when a partition is read from before its checkpointed position.

        The consumer was sent to the checkpoint's positions; a record from before one means
        the client found it past the end of the log and started over: the log the checkpoint
        counted is gone (topic recreated, a memory-backed broker restarted, another cluster
        behind the same address), and its counts would be added to a different stream's.
        """
        unconfirmed = self._unconfirmed
        behind = []
        for record in records:
            position = unconfirmed.pop((record.topic, record.partition), None)
            if position is not None and record.offset < position:
                behind.append(f"{record.topic}[{record.partition}] at {record.offset}, checkpoint at {position}")
            if not unconfirmed:
                break
        if behind:
            log.warning(
                "Kafka has no longer the messages the checkpoint counted: its state is dropped, starting empty",
                extra={"partitions": behind[:10]},
            )
            self._unconfirmed = {}
            self._take_over(Ingest(self.settings, profiles=self.profiles))
            self._checkpointed, self._snapshotted = set(), set()
            self._consumed_at_snapshot = 0
            self._republish = False

    def _run(self) -> None:
        if not self._connect():
            return
        assert self._source is not None
        if self._unconfirmed:
            self._source.seek(dict(self._unconfirmed))
        kafka = self.settings.kafka
        next_verdict = 0.0
        while not self._stop.is_set():
            try:
                records = self._source.poll(kafka.max_poll_records, kafka.poll_timeout_s)
                if records:
                    self.process(records)
                now = self.clock()
                if now >= next_verdict:
                    self.evaluate_verdicts()
                    next_verdict = now + self.settings.verdict_interval_s
            except Exception:  # nothing may stop the consumer; log and go on
                log.exception("error in the consumer loop")
                time.sleep(0.5)

    def process(self, records: list[Record]) -> None:
        """Fold one batch in, publish its dead letters, then commit its offsets."""
        assert self._source is not None and self._sink is not None
        if self._unconfirmed:
            self._check_resumed_positions(records)
        with self.lock:
            dead = self.ingest.process(records, self.clock())
            for attachment in self.attachments:
                attachment.on_batch(self.ingest.states)
            positions = dict(self.ingest.positions)
            cases = [case for state in self.ingest.states.values() for case in state.drain_outbox()]
        if cases:
            self._publish_cases(cases)
            for attachment in self.attachments:
                attachment.add_cases(cases)
        if dead:
            topic = self.settings.kafka.deadletter_topic
            for letter in dead:
                self._sink.dead_letter(letter, topic)
        if dead or cases:
            # Dead letters (and picked cases) must be on the broker before the offsets that skip them
            # are committed or checkpointed: a crash then sends them again, never loses them.
            self._sink.flush(10.0)
        if self._writer is not None:
            # Right after the fold, so state and positions are of one instant; at once for a partition
            # new to the checkpoint, whose offsets are not committed to Kafka before a checkpoint holds it.
            if self.clock() >= self._checkpoint_due or not self._snapshotted.issuperset(positions):
                self.checkpoint()
            checkpointed = self._checkpointed
            positions = {key: offset for key, offset in positions.items() if key in checkpointed}
        self._source.commit(positions)

    def checkpoint(self, wait_s: float | None = 0.0) -> bool:
        """Snapshot the state and the positions of this instant and hand it to the checkpoint writer.

        Called from the consumer thread after a batch, and from stop(). The snapshot is taken
        here, under the lock; the writer saves it from its own thread. ``wait_s`` waits that
        long for the save (None: as long as it takes). Returns whether it is saved by then.
        Never raises: a checkpoint that fails is logged and tried again at the next interval.
        """
        writer = self._writer
        if writer is None:
            return False
        self._checkpoint_due = self.clock() + self.settings.state.checkpoint_interval_s
        try:
            with self.lock:
                consumed = self.ingest.consumed
                if consumed != self._consumed_at_snapshot:
                    partitions = set(self.ingest.positions)
                    writer.submit(encode(self.ingest), (partitions, consumed))
                    self._snapshotted, self._consumed_at_snapshot = partitions, consumed
        except Exception as error:
            log.error("cannot take a checkpoint", exc_info=True, extra={"error": str(error)})
            return False
        return writer.flush(wait_s) if wait_s != 0.0 else False

    def _saved(self, tag: tuple[set[tuple[str, int]], int]) -> None:
        """From the writer's thread: a checkpoint holding these partitions is durable."""
        self._checkpointed = tag[0]

    def _publish_cases(self, cases: list[SpotcheckCase]) -> None:
        """Send picked disagreements to the spot-check topic (docs/contract.md §2)."""
        assert self._sink is not None
        topic = self.settings.kafka.spotcheck_topic
        for case in cases:
            self._sink.send(topic, case.request_id.encode(), orjson.dumps(spotcheck_event(case)))

    # -- verdicts -----------------------------------------------------------------------------

    def evaluate_verdicts(self) -> None:
        """Evaluate every deployment; publish and announce the verdicts that changed."""
        changed: list[Verdict] = []
        # After a resume the verdicts are published once more: the last change may not have left before the crash.
        republish = self._republish and self._sink is not None
        with self.lock:
            for deployment in self.settings.deployments:
                try:
                    verdict = evaluate(deployment, self.ingest.states[deployment.name])
                except Exception:  # a fault in one deployment's checks must not stop the others
                    log.exception("verdict evaluation failed", extra={"deployment": deployment.name})
                    continue
                previous = self.verdicts.get(deployment.name)
                self.verdicts[deployment.name] = verdict
                if verdict.changed_from(previous) or republish:
                    changed.append(verdict)
        if republish:
            self._republish = False
        for verdict in changed:
            log.info(
                "verdict changed",
                extra={"deployment": verdict.deployment, "verdict": verdict.verdict, "reasons": verdict.reasons},
            )
            if self._sink is not None:
                self._sink.send(
                    self.settings.kafka.verdicts_topic,
                    verdict.deployment.encode(),
                    orjson.dumps(verdict.to_dict()),
                )
            for attachment in self.attachments:
                try:
                    attachment.notify(verdict)
                except Exception:
                    log.exception("an attachment failed on a verdict", extra={"attachment": type(attachment).__name__})

    # -- reading ------------------------------------------------------------------------------

    def snapshot(self, name: str) -> DeploymentView:
        """The typed view of one deployment's state as of now (for the API and /metrics)."""
        deployment = self.settings.deployment(name)
        assert deployment is not None
        verdict = self.verdicts.get(name)
        shown = verdict.verdict if verdict is not None else "pending"
        with self.lock:
            dead = {reason: n for (dep, reason), n in self.ingest.dead_letters.items() if dep == name}
            return deployment_view(deployment, self.ingest.states[name], dead, shown)

    def collectors(self) -> list[Collector]:
        """The attachments' own Prometheus collectors."""
        return [collector for attachment in self.attachments for collector in attachment.collectors()]

    def consumer_lag(self) -> dict[tuple[str, str, int], int]:
        """Records not processed yet, by (deployment, role, partition): the log end (as of the last
        poll) less the position processed. A partition shows once a record of it was processed
        (before, where reading starts is not known here), or when it is empty."""
        source = self._source
        if source is None:
            return {}
        ends = source.log_ends()
        with self.lock:
            positions = dict(self.ingest.positions)
        lag: dict[tuple[str, str, int], int] = {}
        for (topic, partition), end in ends.items():
            position = positions.get((topic, partition), 0 if end == 0 else None)
            if position is None:
                continue
            waiting = max(0, end - position)
            for route in self.ingest.routes.get(topic, []):
                lag[(route.state.name, route.role, partition)] = waiting
        return lag

    def unrouted_dead_letters(self) -> dict[str, int]:
        """Dead letters by reason that belong to no configured deployment."""
        with self.lock:
            return {reason: n for (dep, reason), n in self.ingest.dead_letters.items() if dep == UNROUTED}

    def counts(self) -> dict[str, int]:
        """Conservation figures: consumed = processed + dead_lettered."""
        with self.lock:
            return {
                "consumed": self.ingest.consumed,
                "processed": self.ingest.processed,
                "dead_lettered": self.ingest.dead_lettered,
            }


