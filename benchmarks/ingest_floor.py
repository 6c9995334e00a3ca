"""How fast can a Python consumer go at all? Minimal consumers, each doing a little more than the last.

The throughput benchmark compares driftgate's ingest with a bare consumer that only parses
each message. This one measures, on the same events and in the same process, how much
of that rate a consumer keeps when it does only the least of driftgate's work in a plain
Python loop over confluent-kafka's messages:

1. ``orjson``: parse each message (the throughput benchmark's baseline);
2. ``msgspec``: parse and check it into a Prediction, as driftgate's hot path does;
3. ``count``: also count it, in one dict, by topic, model version and class;
4. ``count_join``: also pair it with its other answer by request id, in one dict that
   nothing bounds (no eviction, no TTL, no duplicate check, nothing counted of pairs);
5. ``count_bounded_join``: the same join kept to 100,000 open requests, the oldest evicted
   and counted, as the issue asks of the sidecar's join.

What the last two leave out is all of what a sidecar must still do: bound the join and
count what leaves it, window the counts by event time, keep the canary comparisons, align
the partitions, keep the positions for commits, sample features, dead-letter bad input.
So their ratios are upper bounds of what any pure-Python ingest with a join reaches here.

    python benchmarks/ingest_floor.py [--events 1000000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections import OrderedDict
from collections.abc import Callable

import orjson
from confluent_kafka import Message

# this script's neighbour: the same events, consumer and baseline as the throughput benchmark
from throughput import Work, parse_only, produce_elsewhere, timed_consume

from monitor.core.events import plain_prediction
from monitor.embedded.broker import EmbeddedBroker
from monitor.kafka.topics import ensure_topics
from monitor.server import tune_garbage_collection


# Each loop checks message.error() as the throughput benchmark's baseline (parse_only) does. The
# loops are written out, not composed from shared steps, on purpose: a call or a branch per event
# would be timed too, and each consumer must cost exactly its own work.
def parse_msgspec() -> Work:
    def work(messages: list[Message]) -> int:
        seen = 0
        for message in messages:
            if message.error() is None:
                plain_prediction(message.value(), 0.0)
                seen += 1
        return seen
    return work


def count() -> Work:
    counts: dict[tuple[str, str | None, str], int] = {}

    def work(messages: list[Message]) -> int:
        seen = 0
        for message in messages:
            if message.error() is None:
                prediction = plain_prediction(message.value(), 0.0)
                assert prediction is not None
                key = (message.topic(), prediction.model_version, prediction.label)
                counts[key] = counts.get(key, 0) + 1
                seen += 1
        return seen
    return work


def count_join() -> Work:
    counts: dict[tuple[str, str | None, str], int] = {}
    waiting: dict[str, str] = {}

    def work(messages: list[Message]) -> int:
        seen = 0
        for message in messages:
            if message.error() is None:
                prediction = plain_prediction(message.value(), 0.0)
                assert prediction is not None
                key = (message.topic(), prediction.model_version, prediction.label)
                counts[key] = counts.get(key, 0) + 1
                if waiting.pop(prediction.request_id, None) is None:
                    waiting[prediction.request_id] = prediction.label
                seen += 1
        return seen
    return work


def count_bounded_join(max_open: int = 100_000) -> Work:
    counts: dict[tuple[str, str | None, str], int] = {}
    waiting: OrderedDict[str, str] = OrderedDict()
    evicted = 0

    def work(messages: list[Message]) -> int:
        nonlocal evicted
        seen = 0
        for message in messages:
            if message.error() is None:
                prediction = plain_prediction(message.value(), 0.0)
                assert prediction is not None
                key = (message.topic(), prediction.model_version, prediction.label)
                counts[key] = counts.get(key, 0) + 1
                if waiting.pop(prediction.request_id, None) is None:
                    waiting[prediction.request_id] = prediction.label
                    if len(waiting) > max_open:
                        waiting.popitem(last=False)
                        evicted += 1
                seen += 1
        return seen
    return work


CONSUMERS: dict[str, Callable[[], Work]] = {
    "orjson": lambda: parse_only, "msgspec": parse_msgspec, "count": count, "count_join": count_join,
    "count_bounded_join": count_bounded_join,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--unpaired", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; the best of each consumer counts")
    args = parser.parse_args()
    tune_garbage_collection()  # as `driftgate run` and the throughput benchmark do
    broker = EmbeddedBroker()
    broker.start()
    suffix = uuid.uuid4().hex[:8]
    topics = [f"floor.live.{suffix}", f"floor.canary.{suffix}"]
    try:
        ensure_topics(broker.bootstrap, topics)
        produce_elsewhere(broker.bootstrap, *topics, args.events, args.unpaired)
        best: dict[str, float] = {}
        for round_no in range(1, args.rounds + 1):
            for name, make_work in CONSUMERS.items():
                print(f"round {round_no}: {name} ...", file=sys.stderr)
                elapsed = timed_consume(broker.bootstrap, topics, args.events, make_work())
                best[name] = min(best.get(name, elapsed), elapsed)
    finally:
        broker.stop()
    baseline = best["orjson"]
    figures: dict[str, object] = {"events": args.events, "rounds": args.rounds,
                                  "decode_only_events_per_s": round(args.events / baseline)}
    for name, elapsed in best.items():
        figures[f"{name}_events_per_s"] = round(args.events / elapsed)
        figures[f"{name}_ratio"] = round(baseline / elapsed, 3)
        print(f"{name:>18}: {args.events / elapsed:12,.0f} events/s, {elapsed / args.events * 1e6:.2f} µs an event, "
              f"ratio {baseline / elapsed:.3f}", file=sys.stderr)
    print(orjson.dumps(figures).decode())


if __name__ == "__main__":
    main()
