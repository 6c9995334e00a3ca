"""Ingest throughput: the sidecar's decode + validate + join + state update against a decode-only consumer.

Pre-produces prediction events to a real Kafka-protocol broker (the embedded one unless
--bootstrap is given), then reads the same topics twice:

1. the baseline: a bare confluent-kafka consumer that only parses each message's JSON;
2. driftgate: the configured source's poll plus the full ingest path into the state.

The baseline runs in a child process, so this process's peak resident memory is the
sidecar's alone.

100,000 of the live requests never get a canary answer, so the join holds 100,000 open
requests while the rest stream through. The last line is one JSON object (docs/contract.md §7).

    python benchmarks/throughput.py [--events 1000000] [--client confluent|kafka-python] [--labels text|integers]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
import uuid
from collections.abc import Callable

import orjson
from confluent_kafka import Consumer, Message, Producer, TopicPartition

from monitor.config import parse_config
from monitor.core.ingest import Ingest
from monitor.embedded.broker import EmbeddedBroker
from monitor.kafka.confluent_source import CONSUMER_DEFAULTS
from monitor.kafka.connect import open_source
from monitor.kafka.topics import ensure_topics
from monitor.server import tune_garbage_collection

CLASSES = ("invoice", "contract", "other")
# --labels integers: labels as a scikit-learn classifier emits them, the classes "0", "1", "2"
INTEGER_CLASSES = (0, 1, 2)


def produce(
    bootstrap: str, live_topic: str, canary_topic: str, n_events: int, unpaired: int,
    classes: tuple[str | int, ...] = CLASSES,
) -> None:
    """Produce n_events predictions: pairs of live and canary answers plus `unpaired` live-only ones."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "batch.num.messages": 10000,
                         "queue.buffering.max.messages": 500000})
    pairs = (n_events - unpaired) // 2
    start_ts = 1_800_000_000.0
    for i in range(pairs + unpaired):
        rid = f"r-{i}"
        ts = start_ts + i / 1000
        label = classes[i % 3]
        runner_up = classes[2] if label != classes[2] else classes[0]
        base = {"request_id": rid, "ts": ts, "deployment": "bench", "label": label,
                "scores": {str(label): 0.8, str(runner_up): 0.2},
                "features": {"n_pages": i % 17, "lang": "de", "text_len": 1000 + i % 5000}}
        # Stamped with the request's time, as a model server producing as it answers would be.
        stamp = int(ts * 1000)
        producer.produce(live_topic, orjson.dumps({**base, "model_version": "v1"}), rid.encode(), timestamp=stamp)
        if i < pairs:
            canary_label = classes[(i // 7) % 3]
            producer.produce(canary_topic, orjson.dumps({**base, "label": canary_label, "model_version": "v2"}),
                             rid.encode(), timestamp=stamp)
        if i % 50000 == 0:
            producer.poll(0)
            print(f"produced {i:,} requests", file=sys.stderr)
    producer.flush(120)


def produce_elsewhere(
    bootstrap: str, live_topic: str, canary_topic: str, n_events: int, unpaired: int,
    classes: tuple[str | int, ...] = CLASSES,
) -> None:
    """produce() from a process of its own, so that this one's peak RSS is the consumer side alone."""
    producer = multiprocessing.get_context("spawn").Process(
        target=produce, args=(bootstrap, live_topic, canary_topic, n_events, unpaired, classes)
    )
    producer.start()
    producer.join()
    if producer.exitcode != 0:
        raise SystemExit("producing the events failed")


Work = Callable[[list[Message]], int]


def parse_only(messages: list[Message]) -> int:
    """The baseline's work on a batch: parse each message's JSON, nothing more; how many it parsed."""
    loads = orjson.loads
    seen = 0
    for message in messages:
        if message.error() is None:
            loads(message.value())
            seen += 1
    return seen


def timed_consume(bootstrap: str, topics: list[str], total: int, work: Work) -> float:
    """Seconds a bare consumer takes to read ``total`` messages and do ``work`` on each batch,
    from its first records on (as for the sidecar)."""
    # The sidecar's own librdkafka settings: the consumer reads as fast as the sidecar's source could.
    consumer = Consumer({**CONSUMER_DEFAULTS, "bootstrap.servers": bootstrap, "group.id": f"bare-{uuid.uuid4()}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(topic, 0, 0) for topic in topics])
    seen, started = 0, None
    while seen < total:
        messages = consumer.consume(num_messages=5000, timeout=1.0)
        if started is None and messages:
            started = time.perf_counter()
        seen += work(messages)
    assert started is not None
    elapsed = time.perf_counter() - started
    consumer.close()
    return elapsed


def decode_only(bootstrap: str, topics: list[str], total: int) -> float:
    """Seconds a bare consumer takes to read and JSON-parse every message."""
    return timed_consume(bootstrap, topics, total, parse_only)


def decode_only_elsewhere(bootstrap: str, topics: list[str], total: int, tuned_gc: bool) -> float:
    """decode_only in a process of its own (with the same GC settings as this one): what its
    consumer leaves in memory is not counted in this process's peak, which is the sidecar's."""
    initializer = tune_garbage_collection if tuned_gc else None
    with multiprocessing.get_context("spawn").Pool(1, initializer=initializer) as pool:
        return float(pool.apply(decode_only, (bootstrap, topics, total)))


def sidecar_ingest(
    bootstrap: str, client: str, live: str, canary: str, total: int, max_open: int = 100_000,
    max_lead_s: float = 10.0, drift_sample_every: int = 8,
) -> tuple[float, dict[str, int]]:
    """Seconds the sidecar's source + ingest takes for every message, and figures of the state it filled."""
    settings = parse_config({
        "kafka": {"bootstrap_servers": bootstrap, "client": client, "start_from": "earliest",
                  "partition_assignment": "static", "group_id": f"bench-{uuid.uuid4()}",
                  "max_lead_s": max_lead_s},
        "deployments": [{"name": "bench", "topics": {"live": live, "canary": canary, "feedback": f"{live}.fb"},
                         "join": {"max_open_requests": max_open, "ttl_s": 1e9},
                         "drift": {"sample_every": drift_sample_every}}],
    }, {})
    ingest = Ingest(settings)
    source = open_source(settings.kafka, [live, canary, f"{live}.fb"])
    started = None
    while ingest.consumed < total:
        records = source.poll(settings.kafka.max_poll_records, 1.0)
        if started is None and records:
            # From the first records on: how soon a consumer's first fetch is answered depends on
            # how its start position is found (an offset given, or the group's, or a reset), not on ingest.
            started = time.perf_counter()
        if records:
            ingest.process(records, time.time())
            source.commit(dict(ingest.positions))
    assert started is not None
    elapsed = time.perf_counter() - started
    source.close()
    state = ingest.states["bench"]
    figures = {"open_requests_at_end": len(state.join), "paired": state.join.stats.paired,
               "evicted": state.join.stats.evicted, "dead_letters": ingest.dead_lettered}
    return elapsed, figures


def reset_peak_rss() -> None:
    """Start a new high-water mark of this process's resident memory (Linux: clear_refs 5)."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (VmHWM: the peak since the last
    reset; VmRSS: now), in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--unpaired", type=int, default=100_000)
    parser.add_argument("--client", choices=["confluent", "kafka-python"], default="confluent")
    parser.add_argument("--bootstrap", help="an existing broker instead of the embedded one")
    parser.add_argument("--max-open", type=int, default=100_000, help="join.max_open_requests of the sidecar")
    parser.add_argument("--max-lead", type=float, default=10.0, help="kafka.max_lead_s of the sidecar (0: off)")
    parser.add_argument("--drift-sample-every", type=int, default=8,
                        help="drift.sample_every of the sidecar (1: bin every prediction's features)")
    parser.add_argument("--default-gc", action="store_true", help="keep CPython's default GC thresholds")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; the best of each side counts")
    parser.add_argument("--labels", choices=["text", "integers"], default="text",
                        help="the events' labels: class names, or integers as a scikit-learn classifier emits them")
    args = parser.parse_args()
    # The interpreter with the sidecar's libraries, before any event: what no state costs.
    start_mb = status_mb("VmRSS")

    if not args.default_gc:
        tune_garbage_collection()  # as `driftgate run` does, for both consumers alike
    broker = None
    if args.bootstrap is None:
        broker = EmbeddedBroker()
        broker.start()
    bootstrap = args.bootstrap or broker.bootstrap  # type: ignore[union-attr]
    suffix = uuid.uuid4().hex[:8]
    live, canary = f"bench.live.{suffix}", f"bench.canary.{suffix}"
    try:
        ensure_topics(bootstrap, [live, canary, f"{live}.fb"])
        classes = INTEGER_CLASSES if args.labels == "integers" else CLASSES
        produce_elsewhere(bootstrap, live, canary, args.events, args.unpaired, classes)
        # Interleaved rounds, best of each: neither side profits from going first or second.
        baseline_runs, ingest_runs, ingest_peaks = [], [], []
        for round_no in range(1, args.rounds + 1):
            print(f"round {round_no}: decode-only consumer ...", file=sys.stderr)
            baseline_runs.append(decode_only_elsewhere(bootstrap, [live, canary], args.events, not args.default_gc))
            print(f"round {round_no}: driftgate ingest ...", file=sys.stderr)
            # The sidecar's own peak: the baseline consumer's buffers are not the sidecar's.
            reset_peak_rss()
            ingest_runs.append(sidecar_ingest(
                bootstrap, args.client, live, canary, args.events, args.max_open, args.max_lead,
                args.drift_sample_every,
            ))
            ingest_peaks.append(status_mb("VmHWM"))
        baseline_s = min(baseline_runs)
        ingest_s, state_figures = min(ingest_runs, key=lambda run: run[0])
    finally:
        if broker is not None:
            broker.stop()
    peak_mb = max(ingest_peaks)
    figures = {
        "events": args.events,
        "rounds": args.rounds,
        "gc": "default" if args.default_gc else "tuned",
        "max_open_requests": args.max_open,
        "max_lead_s": args.max_lead,
        "drift_sample_every": args.drift_sample_every,
        "client": args.client,
        "labels": args.labels,
        "events_per_s": round(args.events / ingest_s),
        "decode_only_events_per_s": round(args.events / baseline_s),
        "ratio_vs_decode_only": round(baseline_s / ingest_s, 3),
        "peak_rss_mb": round(peak_mb, 1),
        "rss_at_start_mb": round(start_mb, 1),
        **state_figures,
    }
    print(f"driftgate ingest {figures['events_per_s']:,} events/s, decode-only "
          f"{figures['decode_only_events_per_s']:,} events/s, ratio {figures['ratio_vs_decode_only']}, "
          f"peak RSS {figures['peak_rss_mb']} MB with {figures['open_requests_at_end']:,} open joins",
          file=sys.stderr)
    print(orjson.dumps(figures).decode())


if __name__ == "__main__":
    main()
