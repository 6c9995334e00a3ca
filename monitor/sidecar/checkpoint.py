"""Checkpoints: the whole ingest as one versioned snapshot, and the stores that keep it.

Counts survive a crash exactly because of one rule: a snapshot holds every deployment's
state *and* the positions (next offset to read, per partition) of the same instant, in
one blob written in one transaction. On start the sidecar restores the states and seeks
its consumer to those positions, so whatever was read after the last checkpoint is read
again and counted once. Kafka's committed offsets are secondary: they serve tools that
watch consumer lag, and a start without a checkpoint.

Two halves:

- a pure codec, :func:`encode` (ingest -> bytes) and :func:`decode` (bytes + the current
  settings -> states, positions and ingest figures): JSON with a format number around the
  states as the state codec (:mod:`monitor.core.state.codec`) writes them; an unknown or
  older format is refused with :class:`CheckpointError`;
- stores behind the two-method :class:`CheckpointStore` protocol (``save(snapshot)``,
  ``load()``). :class:`SqliteCheckpointStore` keeps one SQLite file in ``state.dir``.
  A compacted Kafka topic fits the same protocol for pods without a volume: ``save``
  produces the snapshot keyed by the consumer group (in chunks under the broker's message
  size limit, the last chunk naming the count) and flushes; ``load`` reads the topic to
  its end and returns the newest complete snapshot.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

import msgspec

from monitor.config import DeploymentSettings, Settings
from monitor.core.ingest import UNROUTED, Ingest, attach_features, new_state
from monitor.core.profile import ReferenceProfile
from monitor.core.state import codec
from monitor.core.state.deployment import DeploymentState
from monitor.errors import CheckpointError

Profiles = Mapping[str, ReferenceProfile]
log = logging.getLogger(__name__)

# The layout of a snapshot. Bump it when the layout changes in a way older code cannot read,
# and teach decode() to read (or refuse with a reason) every number it has ever written.
# 2: every state as the msgspec structs of monitor.core.state.codec declare it.
FORMAT = 2
FILE_NAME = "checkpoint.sqlite"

Positions = dict[tuple[str, int], int]
Tag = TypeVar("Tag")


class CheckpointStore(Protocol):
    """Where snapshots are kept: ``save`` replaces the last one atomically, ``load`` returns it (or None).

    ``origin`` names where it is (a file), for the messages that refuse what it holds.
    """

    origin: str

    def save(self, snapshot: bytes) -> None: ...
    def load(self) -> bytes | None: ...


class Restored(NamedTuple):
    """What :func:`decode` gives back: the states of the configured deployments, positions, ingest figures."""

    states: dict[str, DeploymentState]
    positions: Positions
    figures: dict[str, Any]


# -- the codec -------------------------------------------------------------------------------


def encode(ingest: Ingest, written_at: float | None = None) -> bytes:
    """Return one snapshot of the ingest: every deployment's state, the positions and the figures.

    The caller holds whatever lock keeps the ingest still, so that the states and the
    positions are of the same instant. The cyclic garbage collector is paused meanwhile:
    the hundreds of thousands of small lists a full join turns into make no cycles, and
    collections triggered by them over a large heap would double the time it takes.
    """
    for state in ingest.states.values():
        state.flush_features()  # bin what waits: a restart then starts with nothing to bin
    collecting = gc.isenabled()
    gc.disable()
    try:
        document = {
            "format": FORMAT,
            "written_at": time.time() if written_at is None else written_at,
            "figures": ingest.figures_to_dict(),
            "deployments": ingest.states,
        }
        # one pass in C from the state structs to JSON (exact sums stay exact: no 64-bit limit)
        return codec.to_json(document)
    finally:
        if collecting:
            gc.enable()


def decode(
    snapshot: bytes, settings: Settings, profiles: Profiles | None = None, origin: str = "the checkpoint"
) -> Restored:
    """Return the states, positions and figures of a snapshot, fitted to the current settings.

    A deployment in the snapshot that is no longer configured is left out (with a warning),
    and so are its dead letters and its share of ``consumed``; a newly configured one starts
    empty; positions of topics no longer read are dropped. ``origin`` (the file, the topic)
    names the snapshot in the errors.
    """
    data = _load_document(snapshot, origin)
    saved = data["deployments"]
    if not isinstance(saved, dict):
        raise CheckpointError("the checkpoint has no deployments mapping")
    states: dict[str, DeploymentState] = {}
    for deployment in settings.deployments:
        if deployment.name in saved:
            state = _state_from_dict(deployment.name, saved[deployment.name])
            profile = (profiles or {}).get(deployment.name)
            states[deployment.name] = take_current_settings(state, deployment, profile)
            attach_features(state, deployment, profile)
        else:
            log.info("deployment not in the checkpoint: it starts empty", extra={"deployment": deployment.name})
            states[deployment.name] = new_state(deployment, (profiles or {}).get(deployment.name))
    dropped = sorted(name for name in saved if name not in states)
    figures = _figures(data)
    if dropped:
        log.warning(
            "the checkpoint holds deployments that are no longer configured: their state is ignored",
            extra={"deployments": dropped},
        )
        # Keep consumed = processed + dead-lettered true for what is restored.
        for name in dropped:
            figures["consumed"] -= sum(_state_from_dict(name, saved[name]).events.values())
    kept_dead = []
    for deployment_name, reason, n in figures["dead_letters"]:
        if deployment_name in states or deployment_name == UNROUTED:
            kept_dead.append([deployment_name, reason, n])
        else:
            figures["consumed"] -= n
    figures["dead_letters"] = kept_dead
    topics = _input_topics(settings)
    figures["positions"] = [[t, p, o] for t, p, o in figures["positions"] if t in topics]
    positions = {(t, p): o for t, p, o in figures["positions"]}
    return Restored(states, positions, figures)


def take_current_settings(
    state: DeploymentState, deployment: DeploymentSettings, profile: ReferenceProfile | None = None
) -> DeploymentState:
    """Apply the config's bounds and sampling to a restored state; running comparisons keep
    their sequential tests' parameters (fixed for a test's whole run), new ones take the config's."""
    fresh = new_state(deployment, profile)
    state.join.max_open, state.join.ttl_s = fresh.join.max_open, fresh.join.ttl_s
    state.feedback.max_requests, state.feedback.ttl_s = fresh.feedback.max_requests, fresh.feedback.ttl_s
    sampler = state.sampler
    sampler.max_per_minute, sampler.priority = fresh.sampler.max_per_minute, fresh.sampler.priority
    sampler.priority_share = fresh.sampler.priority_share
    state.review.size = fresh.review.size
    state.evidence_settings = fresh.evidence_settings
    state.max_classes = fresh.max_classes
    return state


def restore_ingest(
    snapshot: bytes, settings: Settings, profiles: Profiles | None = None, origin: str = "the checkpoint"
) -> Ingest:
    """An Ingest for ``settings`` (and the ``profiles`` its deployments name) that carries on from a snapshot."""
    restored = decode(snapshot, settings, profiles, origin)
    ingest = Ingest(settings, restored.states, profiles)
    ingest.load_figures(restored.figures)
    return ingest


def _load_document(snapshot: bytes, origin: str) -> dict[str, Any]:
    try:
        data = codec.from_json(snapshot)
    except msgspec.DecodeError as error:
        raise CheckpointError(f"{origin} is not valid JSON ({error}); it may be damaged") from None
    if not isinstance(data, dict) or "format" not in data:
        raise CheckpointError(f"{origin} is not a driftgate snapshot (it has no format number)")
    version = data["format"]
    if version != FORMAT:
        # Format 1 (hand-written state forms) is not converted: its states restart empty once it is moved away.
        raise CheckpointError(
            f"{origin} has format {version!r}, which this version of driftgate cannot read "
            f"(it reads format {FORMAT}); run the version that wrote it, or move {origin} "
            "away to start from empty state"
        )
    if "deployments" not in data or "figures" not in data:
        raise CheckpointError("the checkpoint lacks its deployments or figures")
    return data


def _state_from_dict(name: str, data: Any) -> DeploymentState:
    try:
        return codec.decode(data, DeploymentState)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise CheckpointError(f"the checkpoint's state of deployment {name!r} cannot be read: {error!r}") from None


def _figures(data: dict[str, Any]) -> dict[str, Any]:
    figures = data["figures"]
    try:
        return {
            "positions": [[str(t), int(p), int(o)] for t, p, o in figures["positions"]],
            "dead_letters": [[str(d), str(r), int(n)] for d, r, n in figures["dead_letters"]],
            "consumed": int(figures["consumed"]),
        }
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"the checkpoint's ingest figures cannot be read: {error!r}") from None


def _input_topics(settings: Settings) -> set[str]:
    return {getattr(d.topics, role) for d in settings.deployments for role in ("live", "canary", "feedback")}


# -- stores ------------------------------------------------------------------------------------


class SqliteCheckpointStore:
    """Snapshots in one SQLite file (``checkpoint.sqlite`` in ``directory``), one row per ``name``.

    ``name`` is the consumer group: the checkpoint belongs to the same identity as the
    offsets Kafka keeps, so sidecars of different groups may share a directory (replicas
    of one group, each reading its own partitions, each need a directory of their own).

    A save deletes the stored snapshot and inserts the new one in one transaction, so the
    file always holds one complete snapshot: the new one once the commit is durable, the
    previous one if the process dies at any moment before. (Deleting first lets the new row
    reuse the old one's pages: the file stays about one snapshot large.) WAL journal,
    synchronous=FULL, the log folded into the database and emptied after each save. Each
    row carries a SHA-256 of its bytes, checked on load.
    """

    def __init__(self, directory: str | Path, name: str = "driftgate", timeout_s: float = 30.0) -> None:
        self.path = Path(directory) / FILE_NAME
        self.origin = str(self.path)
        self.name = name
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Transactions are begun and ended explicitly (isolation_level=None); the store is
            # used from the consumer thread and, at shutdown, from the main thread (hence the lock).
            self._db = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS snapshots ("
                " name TEXT NOT NULL, seq INTEGER NOT NULL, saved_at REAL NOT NULL,"
                " sha256 TEXT NOT NULL, snapshot BLOB NOT NULL, PRIMARY KEY (name, seq))"
            )
        except (OSError, sqlite3.Error) as error:
            raise CheckpointError(f"cannot open the checkpoint file {self.path}: {error}") from None

    def save(self, snapshot: bytes) -> None:
        """Replace the stored snapshot with this one, atomically."""
        digest = hashlib.sha256(snapshot).hexdigest()
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    seq = self._next_seq()
                    self._delete_older(seq)
                    self._insert(seq, snapshot, digest)
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
                # The snapshot is durable in the log; fold it into the database and empty the log,
                # so that at rest the directory holds about one snapshot, not two.
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as error:
                raise CheckpointError(f"cannot write the checkpoint to {self.path}: {error}") from None

    def load(self) -> bytes | None:
        """The stored snapshot, or None when there is none yet; CheckpointError if it is damaged."""
        with self._lock:
            try:
                row = self._db.execute(
                    "SELECT snapshot, sha256 FROM snapshots WHERE name = ? ORDER BY seq DESC LIMIT 1", (self.name,)
                ).fetchone()
            except sqlite3.Error as error:
                raise CheckpointError(f"cannot read the checkpoint from {self.path}: {error}") from None
        if row is None:
            return None
        snapshot, digest = bytes(row[0]), row[1]
        if hashlib.sha256(snapshot).hexdigest() != digest:
            raise CheckpointError(f"the checkpoint in {self.path} is damaged (its checksum does not match)")
        return snapshot

    def size(self) -> int:
        """Bytes on disk: the database file and its write-ahead log."""
        wal = self.path.with_name(self.path.name + "-wal")
        return sum(p.stat().st_size for p in (self.path, wal) if p.exists())

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _next_seq(self) -> int:
        row = self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM snapshots WHERE name = ?", (self.name,))
        seq: int = row.fetchone()[0]
        return seq

    # The two writes of a save; separate methods so a test can fail between them.
    def _delete_older(self, seq: int) -> None:
        self._db.execute("DELETE FROM snapshots WHERE name = ? AND seq < ?", (self.name, seq))

    def _insert(self, seq: int, snapshot: bytes, digest: str) -> None:
        self._db.execute(
            "INSERT INTO snapshots (name, seq, saved_at, sha256, snapshot) VALUES (?, ?, ?, ?, ?)",
            (self.name, seq, time.time(), digest, snapshot),
        )


class BackgroundWriter(Generic[Tag]):
    """Saves snapshots to a store from a thread of its own, so a slow disk never holds up the consumer.

    Only the newest snapshot matters: one handed over while another is being written
    replaces any still waiting. ``on_saved(tag)`` runs after each successful save; a
    failed save is logged and left to the next one.
    """

    def __init__(self, store: CheckpointStore, on_saved: Callable[[Tag], None]) -> None:
        self.store = store
        self._on_saved = on_saved
        self._changed = threading.Condition()
        self._waiting: tuple[bytes, Tag] | None = None
        self._writing = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="driftgate-checkpoint", daemon=True)
        self._thread.start()

    def submit(self, snapshot: bytes, tag: Tag) -> None:
        """Hand a snapshot over to be saved (replacing one still waiting)."""
        with self._changed:
            self._waiting = (snapshot, tag)
            self._changed.notify_all()

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every snapshot handed over is saved (or has failed); False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._waiting is None and not self._writing, timeout_s)

    def close(self, timeout_s: float | None = None) -> bool:
        """Save what is waiting, then stop the thread; False if that did not end within the timeout."""
        flushed = self.flush(timeout_s)
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        self._thread.join(timeout_s)
        return flushed

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._waiting is not None or self._closed)
                if self._waiting is None:
                    return
                (snapshot, tag), self._waiting = self._waiting, None
                self._writing = True
            try:
                self.store.save(snapshot)
            except Exception as error:
                log.error("cannot write a checkpoint", exc_info=not isinstance(error, CheckpointError),
                          extra={"error": str(error)})
            else:
                self._on_saved(tag)
            finally:
                with self._changed:
                    self._writing = False
                    self._changed.notify_all()


class MemoryCheckpointStore:
    """Keeps the last snapshot in memory: for tests and benchmarks."""

    def __init__(self, snapshot: bytes | None = None) -> None:
        self.snapshot = snapshot
        self.saves = 0
        self.origin = "the checkpoint in memory"

    def save(self, snapshot: bytes) -> None:
        self.snapshot = snapshot
        self.saves += 1

    def load(self) -> bytes | None:
        return self.snapshot


def open_store(settings: Settings) -> CheckpointStore | None:
    """The store the settings ask for (None when checkpoints are off)."""
    if not settings.state.enabled:
        return None
    return SqliteCheckpointStore(settings.state.dir, name=settings.kafka.group_id)

