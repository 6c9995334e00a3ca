"""Checkpoints: the codec, the SQLite store's atomic replace, and how the sidecar resumes from them."""

from __future__ import annotations

import logging
import os
import queue
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.registry import Collector

from monitor.config import Settings, parse_config
from monitor.core.ingest import Ingest
from monitor.core.records import DeadLetter, Record
from monitor.core.state.codec import encode as encode_state
from monitor.core.state.deployment import DeploymentState
from monitor.core.state.spotcheck import SpotcheckCase
from monitor.core.verdict import Verdict, evaluate
from monitor.embedded.simulator import TrafficSimulator
from monitor.errors import CheckpointError
from monitor.sidecar.checkpoint import (
    FORMAT,
    MemoryCheckpointStore,
    SqliteCheckpointStore,
    decode,
    encode,
    restore_ingest,
)
from monitor.sidecar.service import Sidecar

START_TS = 1_800_000_000.0
TOPICS = {
    "docs": {"live": "d.live", "canary": "d.canary", "feedback": "d.feedback"},
    "mail": {"live": "m.live", "canary": "m.canary", "feedback": "m.feedback"},
}
MALFORMED = [b"not json", b"\xff\xfe", b"[1]", b'{"deployment": "docs", "label": "invoice"}', b""]


def settings(names: tuple[str, ...] = ("docs", "mail"), state: dict[str, Any] | None = None) -> Settings:
    deployments = []
    for name in names:
        topics = TOPICS.get(name) or {role: f"{name[0]}.{role}" for role in ("live", "canary", "feedback")}
        # "docs" has fixed classes, the others learn theirs from the data.
        classes = {"classes": ["invoice", "contract", "other"]} if name == "docs" else {}
        deployments.append({"name": name, "topics": topics, **classes})
    return parse_config({"deployments": deployments, "state": state or {}}, {})


def stream(name: str, scenario: str, n_requests: int, seed: int = 3) -> list[Record]:
    """Simulated records of one deployment (with some malformed ones on its live topic), offsets from 0."""
    offsets: dict[str, int] = {}
    records = []
    simulator = TrafficSimulator(scenario, deployment=name, seed=seed)
    for i, event in enumerate(simulator.stream(n_requests, start_ts=START_TS, rate_per_s=20)):
        topic = TOPICS[name][event.role]
        values = [orjson.dumps(event.payload)]
        if i % 97 == 0:
            values.append(MALFORMED[(i // 97) % len(MALFORMED)])
        for value in values:
            offset = offsets.get(topic, 0)
            offsets[topic] = offset + 1
            records.append(Record(topic, 0, offset, event.key.encode(), value, START_TS + i))
    return records


@pytest.fixture(scope="module")
def records() -> list[Record]:
    # Interleave the two deployments' records as a consumer reading several topics would.
    docs, mail = stream("docs", "good", 1500), stream("mail", "collapse", 1200)
    merged: list[Record] = []
    for i in range(max(len(docs), len(mail))):
        merged.extend(r[i] for r in (docs, mail) if i < len(r))
    return merged


def fold(ingest: Ingest, records: list[Record], batch: int = 500) -> Ingest:
    for start in range(0, len(records), batch):
        ingest.process(records[start : start + batch], now=START_TS)
    return ingest


def verdicts(ingest: Ingest, config: Settings) -> dict[str, Any]:
    """Each deployment's verdict object, without the time it was evaluated at."""
    objects = {d.name: evaluate(d, ingest.states[d.name]).to_dict() for d in config.deployments}
    for verdict in objects.values():
        verdict.pop("evaluated_at")
    return objects


def state_dicts(ingest: Ingest) -> dict[str, Any]:
    """Each state as data once the features waiting to be binned are binned (as a checkpoint saves it)."""
    for state in ingest.states.values():
        state.flush_features()
    return {name: encode_state(state) for name, state in ingest.states.items()}


# -- the codec -----------------------------------------------------------------------------


def test_round_trip_equals_the_original(records: list[Record]) -> None:
    config = settings()
    ingest = fold(Ingest(config), records)
    assert ingest.dead_lettered > 0 and ingest.processed > 0
    restored = restore_ingest(encode(ingest), config)
    assert state_dicts(restored) == state_dicts(ingest)
    assert restored.figures_to_dict() == ingest.figures_to_dict()
    assert restored.consumed == restored.processed + restored.dead_lettered == len(records)


@pytest.mark.parametrize("cut", [1, 2000, 4000], ids=["before-any-canary", "early", "middle"])
def test_carrying_on_after_a_restore_equals_an_uninterrupted_run(records: list[Record], cut: int) -> None:
    config = settings()
    uninterrupted = fold(Ingest(config), records)
    first = fold(Ingest(config), records[:cut])
    # Through bytes, as after a restart: the second half is folded into the decoded state.
    resumed = fold(restore_ingest(encode(first), config), records[cut:])
    assert state_dicts(resumed) == state_dicts(uninterrupted)
    assert resumed.figures_to_dict() == uninterrupted.figures_to_dict()
    assert verdicts(resumed, config) == verdicts(uninterrupted, config)


def test_decode_gives_states_positions_and_figures(records: list[Record]) -> None:
    config = settings()
    ingest = fold(Ingest(config), records)
    states, positions, figures = decode(encode(ingest), config)
    assert set(states) == {"docs", "mail"}
    assert positions == ingest.positions
    assert figures["consumed"] == len(records)


def test_an_unknown_format_is_refused_with_a_reason(records: list[Record]) -> None:
    document = orjson.loads(encode(fold(Ingest(settings()), records[:100])))
    document["format"] = FORMAT + 41
    with pytest.raises(CheckpointError, match=f"format {FORMAT + 41}.*reads format {FORMAT}"):
        decode(orjson.dumps(document), settings())
    with pytest.raises(CheckpointError, match="not valid JSON"):
        decode(b"\x00garbage", settings())
    with pytest.raises(CheckpointError, match="no format number"):
        decode(b"[1, 2]", settings())


def test_an_old_format_checkpoint_is_refused_naming_the_file(records: list[Record], tmp_path: Path) -> None:
    # Format 1 held hand-written forms of each state; it is not read, and the error says which file to move.
    document = orjson.loads(encode(fold(Ingest(settings()), records[:100])))
    assert FORMAT == 2
    document["format"] = 1
    store = SqliteCheckpointStore(tmp_path)
    store.save(orjson.dumps(document))
    snapshot = store.load()
    assert snapshot is not None
    with pytest.raises(CheckpointError, match=f"{re.escape(str(store.path))} has format 1.*reads format 2"):
        restore_ingest(snapshot, settings(), origin=str(store.path))


def test_a_damaged_state_is_refused_naming_the_deployment(records: list[Record]) -> None:
    document = orjson.loads(encode(fold(Ingest(settings()), records[:100])))
    document["deployments"]["mail"]["events"] = "many"
    with pytest.raises(CheckpointError, match=r"'mail'.*events"):
        decode(orjson.dumps(document), settings())


def test_a_deployment_no_longer_configured_is_ignored_and_a_new_one_starts_empty(
    records: list[Record], caplog: pytest.LogCaptureFixture
) -> None:
    old = fold(Ingest(settings(("docs", "mail"))), records)
    now = settings(("docs", "news"))
    with caplog.at_level(logging.WARNING, logger="monitor.sidecar.checkpoint"):
        restored = restore_ingest(encode(old), now)
    assert any("no longer configured" in r.getMessage() and getattr(r, "deployments", None) == ["mail"]
               for r in caplog.records)
    assert encode_state(restored.states["docs"]) == encode_state(old.states["docs"])
    assert sum(restored.states["news"].events.values()) == 0
    # mail's topics are no longer read, and its records no longer count as consumed.
    assert all(topic.startswith("d.") for topic, _ in restored.positions)
    assert all(deployment != "mail" for deployment, _ in restored.dead_letters)
    assert restored.consumed == restored.processed + restored.dead_lettered


def test_a_restored_state_takes_the_configs_bounds_and_sampling_but_keeps_running_tests(
    records: list[Record],
) -> None:
    old = fold(Ingest(settings(("docs",))), [r for r in records if r.topic.startswith("d.")])
    for i in range(10):
        old.states["docs"].join.add_live(f"open-{i}", "invoice", ts=1e10)
    comparison = old.states["docs"].current
    assert comparison is not None and comparison.evidence is not None
    changed = settings(("docs",)).model_dump()
    deployment = changed["deployments"][0]
    deployment["join"] = {"max_open_requests": 3, "ttl_s": 60.0}
    deployment["spotcheck"] = {**deployment["spotcheck"], "max_per_minute": 2, "priority": {"invoice": 5.0}}
    deployment["policy"]["alpha"] = 0.01
    restored = restore_ingest(encode(old), parse_config(changed, {})).states["docs"]
    assert (restored.join.max_open, restored.join.ttl_s) == (3, 60.0)
    assert (restored.sampler.max_per_minute, restored.sampler.priority) == (2, {"invoice": 5.0})
    assert restored.evidence_settings is not None and restored.evidence_settings.alpha == 0.01
    # the running comparison's sequential tests keep the alpha they started with
    running = restored.current
    assert running is not None and running.evidence is not None
    assert running.evidence.settings.alpha == comparison.evidence.settings.alpha == 0.05
    # and a join over its new bound shrinks as requests come (the surplus counted as evicted)
    held, evicted = len(restored.join), restored.join.stats.evicted
    assert held >= 10
    restored.join.add_live("late-1", "invoice", ts=1e10)
    assert len(restored.join) == 3 and restored.join.stats.evicted == evicted + held + 1 - 3


# -- the SQLite store -----------------------------------------------------------------------


def test_sqlite_store_saves_loads_and_replaces(tmp_path: Path) -> None:
    store = SqliteCheckpointStore(tmp_path / "state", name="group-a")
    assert store.load() is None
    store.save(b"first")
    store.save(b"second")
    assert store.load() == b"second"
    other_group = SqliteCheckpointStore(tmp_path / "state", name="group-b")
    assert other_group.load() is None
    store.close()
    reopened = SqliteCheckpointStore(tmp_path / "state", name="group-a")
    assert reopened.load() == b"second"
    rows = reopened._db.execute("SELECT COUNT(*) FROM snapshots WHERE name = 'group-a'").fetchone()[0]
    assert rows == 1
    assert reopened._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


class FailingBetweenWrites(SqliteCheckpointStore):
    def _insert(self, seq: int, snapshot: bytes, digest: str) -> None:
        # The previous snapshot has been deleted in this transaction: the failure must bring it back.
        raise RuntimeError("the process dies between the two writes")


def test_a_failure_inside_the_transaction_leaves_the_previous_checkpoint(tmp_path: Path) -> None:
    SqliteCheckpointStore(tmp_path).save(b"previous")
    failing = FailingBetweenWrites(tmp_path)
    with pytest.raises(RuntimeError):
        failing.save(b"half-written")
    assert failing.load() == b"previous"
    assert SqliteCheckpointStore(tmp_path).load() == b"previous"
    failing.close()


def test_a_process_killed_inside_the_transaction_leaves_the_previous_checkpoint(tmp_path: Path) -> None:
    SqliteCheckpointStore(tmp_path).save(b"previous")
    # A child process deletes the old snapshot and writes the new one, then hangs before the
    # transaction ends; SIGKILL it there.
    child = textwrap.dedent(
        f"""
        import sys, time
        from monitor.sidecar.checkpoint import SqliteCheckpointStore
        class Hanging(SqliteCheckpointStore):
            def _insert(self, seq, snapshot, digest):
                super()._insert(seq, snapshot, digest)
                print("inside", flush=True)
                time.sleep(60)
        Hanging({str(tmp_path)!r}).save(b"never committed" * 100000)
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", child], stdout=subprocess.PIPE, cwd=Path(__file__).resolve().parents[3]
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == b"inside"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
    assert SqliteCheckpointStore(tmp_path).load() == b"previous"


def test_a_damaged_snapshot_is_refused(tmp_path: Path) -> None:
    store = SqliteCheckpointStore(tmp_path)
    store.save(b"good bytes")
    store._db.execute("UPDATE snapshots SET snapshot = ?", (b"bad bytes",))
    with pytest.raises(CheckpointError, match="damaged"):
        store.load()


def test_an_unwritable_directory_is_a_checkpoint_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(CheckpointError, match="cannot open"):
        SqliteCheckpointStore(blocker / "state")


# -- the sidecar's life cycle with checkpoints ----------------------------------------------------


class FakeSource:
    """Hands out prepared batches; remembers seeks and commits."""

    def __init__(self, batches: list[list[Record]]) -> None:
        self.batches = list(batches)
        self.seeks: list[dict[tuple[str, int], int]] = []
        self.commits: list[dict[tuple[str, int], int]] = []
        self.closed = False

    def poll(self, max_records: int, timeout_s: float) -> list[Record]:
        if self.batches:
            return self.batches.pop(0)
        time.sleep(0.01)
        return []

    def commit(self, positions: dict[tuple[str, int], int]) -> None:
        self.commits.append(dict(positions))

    def seek(self, positions: dict[tuple[str, int], int]) -> None:
        self.seeks.append(dict(positions))

    def log_ends(self) -> dict[tuple[str, int], int]:
        return {}

    def ready(self) -> tuple[bool, str]:
        return True, "reading"

    def close(self) -> None:
        self.closed = True


class FakeSink:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.dead: list[DeadLetter] = []

    def send(self, topic: str, key: bytes | None, value: bytes, headers: Any = None) -> None:
        self.sent.append((topic, key, value))

    def dead_letter(self, letter: DeadLetter, topic: str) -> None:
        self.dead.append(letter)

    def flush(self, timeout_s: float = 10) -> int:
        return 0

    def close(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = START_TS

    def __call__(self) -> float:
        return self.now


class VerdictRecorder:
    """An attachment that notes the deployment of each verdict it is told of."""

    def __init__(self, heard: list[str]) -> None:
        self.heard = heard

    def notify(self, verdict: Verdict) -> None:
        self.heard.append(verdict.deployment)

    def add_cases(self, cases: list[SpotcheckCase]) -> None:
        pass

    def on_batch(self, states: Mapping[str, DeploymentState]) -> None:
        pass

    def collectors(self) -> list[Collector]:
        return []

    def start(self) -> None:
        pass

    def stop(self, timeout_s: float) -> None:
        pass


def run_until_drained(sidecar: Sidecar, source: FakeSource, timeout_s: float = 10) -> None:
    sidecar.start()
    deadline = time.monotonic() + timeout_s
    while source.batches and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    sidecar.stop(timeout_s=5)


def batches(records: list[Record], size: int = 400) -> list[list[Record]]:
    return [records[i : i + size] for i in range(0, len(records), size)]


@pytest.fixture
def quiet_settings() -> Iterator[Settings]:
    yield settings(state={"checkpoint_interval_s": 3600})


def test_the_sidecar_checkpoints_at_stop_and_resumes_where_it_stopped(
    records: list[Record], quiet_settings: Settings
) -> None:
    store = MemoryCheckpointStore()
    cut = len(records) // 2
    first_source = FakeSource(batches(records[:cut]))
    first = Sidecar(quiet_settings, lambda: first_source, FakeSink, clock=Clock(), checkpoints=store)
    run_until_drained(first, first_source)
    assert store.snapshot is not None
    assert first_source.closed

    second_source = FakeSource(batches(records[cut:]))
    second = Sidecar(quiet_settings, lambda: second_source, FakeSink, clock=Clock(), checkpoints=store)
    run_until_drained(second, second_source)
    assert second_source.seeks == [first.ingest.positions]
    whole = fold(Ingest(quiet_settings), records)
    assert state_dicts(second.ingest) == state_dicts(whole)
    assert second.counts() == {"consumed": len(records), "processed": whole.processed,
                               "dead_lettered": whole.dead_lettered}


def test_offsets_of_a_partition_are_committed_only_once_a_checkpoint_holds_it(
    records: list[Record], quiet_settings: Settings
) -> None:
    store = MemoryCheckpointStore()
    source = FakeSource(batches(records, 300))
    sidecar = Sidecar(quiet_settings, lambda: source, FakeSink, clock=Clock(), checkpoints=store)
    run_until_drained(sidecar, source)
    # With an hour between checkpoints, only the batches that brought new partitions forced one...
    assert 1 <= store.saves <= 7
    # ...and every commit names only partitions some checkpoint held when it was made.
    saved = decode(store.snapshot or b"", quiet_settings).positions
    for commit in source.commits:
        assert set(commit) <= set(saved)


class StepSource(FakeSource):
    """Hands out one batch each time the test releases one."""

    def __init__(self) -> None:
        super().__init__([])
        self.released: queue.Queue[list[Record]] = queue.Queue()

    def poll(self, max_records: int, timeout_s: float) -> list[Record]:
        try:
            return self.released.get(timeout=0.05)
        except queue.Empty:
            return []


def test_checkpoints_follow_the_interval_on_the_sidecar_clock(records: list[Record]) -> None:
    config = settings(state={"checkpoint_interval_s": 5})
    store = MemoryCheckpointStore()
    clock = Clock()
    source = StepSource()
    sidecar = Sidecar(config, lambda: source, FakeSink, clock=clock, checkpoints=store)
    sidecar.start()
    consumed = 0

    def step(batch: list[Record]) -> int:
        """Release one batch, wait until it is folded in and any checkpoint it caused is saved."""
        nonlocal consumed
        source.released.put(batch)
        consumed += len(batch)
        deadline = time.monotonic() + 5
        while sidecar.counts()["consumed"] < consumed and time.monotonic() < deadline:
            time.sleep(0.005)
        assert sidecar._writer is not None and sidecar._writer.flush(5)
        return store.saves

    try:
        chunks = batches(records, 200)
        for chunk in chunks[:5]:  # by now every partition has been seen (and checkpointed at once)
            step(chunk)
        assert len(sidecar.ingest.positions) == 6
        saves = store.saves
        assert step(chunks[5]) == saves
        clock.now += 4
        assert step(chunks[6]) == saves
        clock.now += 2
        assert step(chunks[7]) == saves + 1
        assert step(chunks[8]) == saves + 1
    finally:
        sidecar.stop()
    assert store.saves == saves + 2  # the last one at stop, with chunk 8
    assert decode(store.snapshot or b"", config).figures["consumed"] == consumed


def test_a_refused_checkpoint_stops_consuming_but_not_the_process_and_is_kept(quiet_settings: Settings) -> None:
    store = MemoryCheckpointStore(b'{"format": 999, "deployments": {}, "figures": {}}')
    source = FakeSource([])
    sidecar = Sidecar(quiet_settings, lambda: source, FakeSink, checkpoints=store)
    sidecar.start()
    ready, reason = sidecar.ready()
    assert not ready and "checkpoint refused" in reason and "format 999" in reason
    sidecar.stop()
    assert store.saves == 0  # the unreadable checkpoint is not overwritten


def test_a_checkpoint_ahead_of_the_logs_is_dropped(
    records: list[Record], quiet_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    before = fold(Ingest(quiet_settings), records)
    store = MemoryCheckpointStore(encode(before))
    # The topics were recreated: the consumer, sent past their end, starts over from offset 0.
    source = FakeSource(batches(records[:300]))
    sidecar = Sidecar(quiet_settings, lambda: source, FakeSink, clock=Clock(), checkpoints=store)
    with caplog.at_level(logging.WARNING, logger="monitor.sidecar.service"):
        run_until_drained(sidecar, source)
    assert source.seeks == [before.positions]
    assert sidecar.counts()["consumed"] == 300
    assert state_dicts(sidecar.ingest) == state_dicts(fold(Ingest(quiet_settings), records[:300]))
    assert any("no longer the messages the checkpoint counted" in r.getMessage() for r in caplog.records)
    assert decode(store.snapshot or b"", quiet_settings).figures["consumed"] == 300


def test_the_kafka_client_is_retried_until_it_starts(quiet_settings: Settings) -> None:
    attempts: list[int] = []
    source = FakeSource([])

    def flaky() -> FakeSource:
        attempts.append(1)
        if len(attempts) < 2:
            raise ConnectionError("broker away")
        return source

    sidecar = Sidecar(quiet_settings, flaky, FakeSink, checkpoints=MemoryCheckpointStore())
    sidecar.start()
    deadline = time.monotonic() + 1.0
    while sidecar._source is None and time.monotonic() < deadline:
        ready, reason = sidecar.ready()
        assert not ready
        time.sleep(0.01)
    assert "broker away" in reason
    deadline = time.monotonic() + 5.0
    while not sidecar.ready()[0] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sidecar.ready() == (True, "reading")
    sidecar.stop()
    assert len(attempts) == 2


def test_verdicts_are_published_once_more_after_a_resume(records: list[Record], quiet_settings: Settings) -> None:
    store = MemoryCheckpointStore(encode(fold(Ingest(quiet_settings), records)))
    sink = FakeSink()
    source = FakeSource([])
    sidecar = Sidecar(quiet_settings, lambda: source, lambda: sink, clock=Clock(), checkpoints=store)
    heard: list[str] = []
    sidecar.attach(VerdictRecorder(heard))
    sidecar.start()
    assert sidecar.verdicts["mail"].verdict == "no_go"  # restored before consuming
    deadline = time.monotonic() + 5
    while len(sink.sent) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    sidecar.stop()
    published = sorted(orjson.loads(value)["deployment"] for topic, _, value in sink.sent if "verdicts" in topic)
    assert published == ["docs", "mail"]
    assert sorted(heard) == ["docs", "mail"]


def test_disabled_checkpoints_write_nothing(tmp_path: Path) -> None:
    config = settings(state={"enabled": False, "dir": str(tmp_path / "state")})
    source = FakeSource([])
    sidecar = Sidecar(config, lambda: source, FakeSink)
    sidecar.start()
    sidecar.stop()
    assert not (tmp_path / "state").exists()
