"""The cost of checkpoints: the sidecar's consume loop with and without them, and the size of one on disk.

Pre-builds the records in memory (simulated traffic of one deployment, 3 classes), then
runs the real Sidecar loop over them twice in this process, fed by an in-memory source:

1. without checkpoints;
2. with the SQLite store in a temporary directory at ``--interval`` seconds (default: the
   default ``state.checkpoint_interval_s``).

The first ``--unpaired`` requests get a live answer only, so from early on the join holds
that many open requests (100,000 by default, the default ``join.max_open_requests``) and
the state is as large as it gets. Event time runs fast enough that nothing expires.
The last line is one JSON object (docs/contract.md §7).

    python benchmarks/checkpoint.py [--requests 1200000] [--unpaired 100000] [--interval 10]
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from monitor.config import Settings, StateSettings, parse_config
from monitor.core.records import DeadLetter, Record
from monitor.embedded.simulator import TrafficSimulator
from monitor.server import tune_garbage_collection
from monitor.sidecar.checkpoint import SqliteCheckpointStore, encode
from monitor.sidecar.service import Sidecar

TOPICS = {"live": "bench.live", "canary": "bench.canary", "feedback": "bench.feedback"}
BATCH = 5000  # kafka.max_poll_records' default


def build_records(n_requests: int, unpaired: int, rate_per_s: float) -> list[list[Record]]:
    """Batches of records as the consumer would hand them over: live, canary and feedback interleaved."""
    simulator = TrafficSimulator("good", deployment="bench", seed=1)
    offsets = dict.fromkeys(TOPICS, 0)
    records: list[Record] = []
    start = 1_800_000_000.0
    for i in range(n_requests):
        for event in simulator.request(start + i / rate_per_s):
            if event.role == "canary" and i < unpaired:
                continue
            role = event.role
            records.append(Record(TOPICS[role], 0, offsets[role], event.key.encode(), orjson.dumps(event.payload),
                                  start + i / rate_per_s))
            offsets[role] += 1
        if i % 200_000 == 0:
            print(f"built {i:,} requests", file=sys.stderr)
    return [records[i : i + BATCH] for i in range(0, len(records), BATCH)]


class ListSource:
    """Hands out the prepared batches, then nothing."""

    def __init__(self, batches: list[list[Record]]) -> None:
        self.batches = batches
        self.next = 0
        self.drained = threading.Event()

    def poll(self, max_records: int, timeout_s: float) -> list[Record]:
        if self.next < len(self.batches):
            self.next += 1
            return self.batches[self.next - 1]
        self.drained.set()
        time.sleep(0.01)
        return []

    def commit(self, positions: dict[tuple[str, int], int]) -> None:
        pass

    def seek(self, positions: dict[tuple[str, int], int]) -> None:
        pass

    def ready(self) -> tuple[bool, str]:
        return True, "in memory"

    def close(self) -> None:
        pass


class NullSink:
    def send(self, topic: str, key: bytes | None, value: bytes, headers: Any = None) -> None:
        pass

    def dead_letter(self, letter: DeadLetter, topic: str) -> None:
        pass

    def flush(self, timeout_s: float = 10) -> int:
        return 0

    def close(self) -> None:
        pass


class TimedStore(SqliteCheckpointStore):
    """The SQLite store, timing each save (checksum and transaction)."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, name="bench")
        self.save_s: list[float] = []
        self.sizes: list[int] = []

    def save(self, snapshot: bytes) -> None:
        started = time.perf_counter()
        super().save(snapshot)
        self.save_s.append(time.perf_counter() - started)
        self.sizes.append(len(snapshot))


class TimedSidecar(Sidecar):
    """The sidecar, timing each checkpoint it writes (snapshot under the lock, then the save)."""

    checkpoint_s: list[float]

    def checkpoint(self) -> bool:
        started = time.perf_counter()
        written = super().checkpoint()
        self.checkpoint_s.append(time.perf_counter() - started)
        return written


def run(settings: Settings, batches: list[list[Record]], store: TimedStore | None) -> tuple[float, TimedSidecar]:
    """Seconds the sidecar's consume loop takes over every batch (the checkpoint at stop not included).

    ``checkpoint_s`` of the sidecar: the time each checkpoint held the consumer thread up
    (the snapshot); the store's ``save_s``: the time each save took in the writer's thread.
    """
    gc.collect()
    source = ListSource(batches)
    sidecar = TimedSidecar(settings, lambda: source, NullSink, checkpoints=store)
    sidecar.checkpoint_s = []
    started = time.perf_counter()
    sidecar.start()
    source.drained.wait()
    elapsed = time.perf_counter() - started
    sidecar.checkpoint_s = list(sidecar.checkpoint_s)  # the ones in the run: stop() adds one more
    in_run = len(sidecar.checkpoint_s)
    sidecar.stop()
    del sidecar.checkpoint_s[in_run:]
    return elapsed, sidecar


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_200_000)
    parser.add_argument("--unpaired", type=int, default=100_000)
    parser.add_argument("--interval", type=float, default=StateSettings().checkpoint_interval_s)
    parser.add_argument("--rounds", type=int, default=2, help="alternated runs of each kind; the best counts")
    parser.add_argument("--default-gc", action="store_true", help="keep CPython's default GC thresholds")
    args = parser.parse_args()
    if not args.default_gc:
        tune_garbage_collection()  # as `driftgate run` does

    # Event time must fit in the join's TTL (600 s) so that nothing expires: the state stays full.
    rate = max(2500.0, args.requests / 500)
    batches = build_records(args.requests, args.unpaired, rate)
    total = sum(len(batch) for batch in batches)
    config = {"deployments": [{"name": "bench", "classes": ["invoice", "contract", "other"], "topics": TOPICS}]}
    with tempfile.TemporaryDirectory(prefix="driftgate-bench-") as directory:
        settings = parse_config({**config, "state": {"dir": directory, "checkpoint_interval_s": args.interval}}, {})
        # Alternated, best of each: the runs' own spread is a few percent.
        without: list[float] = []
        with_checkpoints: list[float] = []
        for round_number in range(args.rounds):
            print(f"{total:,} records in {len(batches):,} batches; round {round_number + 1}", file=sys.stderr)
            elapsed, plain = run(settings, batches, None)
            assert plain.ingest.consumed == total
            without.append(elapsed)
            del plain  # a second state alive would slow the collector in the next run
            for old in Path(directory).glob("checkpoint.sqlite*"):
                old.unlink()
            store = TimedStore(Path(directory))
            elapsed, checkpointed = run(settings, batches, store)
            assert checkpointed.ingest.consumed == total
            with_checkpoints.append(elapsed)
            in_run = checkpointed.checkpoint_s
            if round_number + 1 < args.rounds:
                store.close()
                del checkpointed
        without_s, with_s = min(without), min(with_checkpoints)
        state = checkpointed.ingest.states["bench"]
        started = time.perf_counter()
        snapshot = encode(checkpointed.ingest)
        encode_s = time.perf_counter() - started
        started = time.perf_counter()
        hashlib.sha256(snapshot).digest()
        sha_s = time.perf_counter() - started
        on_disk = store.size()
        store.close()
    figures = {
        "records": total,
        "gc": "default" if args.default_gc else "tuned",
        "checkpoint_interval_s": args.interval,
        "events_per_s_without_checkpoints": round(total / without_s),
        "events_per_s_with_checkpoints": round(total / with_s),
        "ratio_with_vs_without": round(without_s / with_s, 3),
        "checkpoints_in_run": len(in_run),
        "checkpoint_s_max": round(max(in_run), 3) if in_run else None,
        "checkpoint_s_median": round(statistics.median(in_run), 3) if in_run else None,
        "share_of_run_in_checkpoints": round(sum(in_run) / with_s, 4),
        "sqlite_save_s_max": round(max(store.save_s), 3),
        "final_encode_s": round(encode_s, 3),
        "final_sha256_s": round(sha_s, 3),
        "open_requests": len(state.join),
        "snapshot_bytes_per_deployment": len(snapshot),
        "sqlite_bytes_on_disk_per_deployment": on_disk,
    }
    for name, value in figures.items():
        print(f"{name:>38}: {value}", file=sys.stderr)
    print(orjson.dumps(figures).decode())


if __name__ == "__main__":
    main()
