"""The consumer with and without the Elasticsearch sink: the sink must not slow it.

Pre-produces prediction events to the embedded broker (as benchmarks/throughput.py does),
then runs the whole sidecar (source, ingest, verdicts, Kafka sink) over them three ways,
timing how long it takes to consume every event:

1. ``none``: no Elasticsearch section (the baseline);
2. ``indexing``: the sink writing to a running Elasticsearch-compatible server (noida-db);
3. ``unreachable``: the sink pointed at a port where nothing listens, so every document
   goes to the on-disk spool and every bulk attempt fails and backs off.

Windows are one second of event time (1,000 events), so thousands close during a run and
the sink has real work. The last line is one JSON object (docs/contract.md §7).

    python benchmarks/elasticsearch_sink.py [--events 300000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from throughput import produce

from monitor.config import parse_config
from monitor.embedded.broker import EmbeddedBroker
from monitor.embedded.elasticsearch import EmbeddedElasticsearch
from monitor.embedded.loopback import free_port
from monitor.kafka.topics import ensure_topics
from monitor.server import build_sidecar, tune_garbage_collection
from monitor.sinks.elasticsearch.sink import ElasticsearchSink

MODES = ("none", "indexing", "unreachable")


def consume(
    bootstrap: str, live: str, canary: str, total: int, es_url: str | None, spool: Path, drain: bool
) -> dict[str, Any]:
    """Seconds a sidecar takes to consume ``total`` events; then (``drain``) what its sink indexed."""
    config: dict[str, Any] = {
        "kafka": {"bootstrap_servers": bootstrap, "start_from": "earliest", "partition_assignment": "static",
                  "group_id": f"bench-{uuid.uuid4()}", "create_topics": False,
                  "deadletter_topic": f"{live}.dead", "verdicts_topic": f"{live}.verdicts",
                  "spotcheck_topic": f"{live}.spotcheck"},
        "state": {"enabled": False, "dir": str(spool)},
        "deployments": [{"name": "bench", "window_s": 1.0,
                         "topics": {"live": live, "canary": canary, "feedback": f"{live}.fb"}}],
    }
    if es_url is not None:
        config["elasticsearch"] = {"hosts": [es_url], "index_prefix": f"bench-{uuid.uuid4().hex[:8]}",
                                   "spool_max_documents": 1_000_000}
    sidecar = build_sidecar(parse_config(config, {}))
    started = time.perf_counter()
    sidecar.start()
    while sidecar.counts()["consumed"] < total:
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    figures: dict[str, Any] = {"seconds": elapsed}
    # After the clock stopped (the figure is the consumer's): the sink sends what is left, if it can.
    sidecar.stop(120.0 if drain else 2.0)  # the sink, stopped last, gets as long
    sink = next((item for item in sidecar.attachments if isinstance(item, ElasticsearchSink)), None)
    if sink is not None:
        figures["indexed"] = sum(n for (_, _, outcome), n in sink.counts().items() if outcome == "indexed")
        figures["spooled"] = len(sink.spool)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; the best of each mode counts")
    args = parser.parse_args()

    tune_garbage_collection()
    work = Path(tempfile.mkdtemp(prefix="driftgate-bench-es-"))
    suffix = uuid.uuid4().hex[:8]
    live, canary = f"bench.live.{suffix}", f"bench.canary.{suffix}"
    with EmbeddedBroker() as broker, EmbeddedElasticsearch(data_dir=work / "elasticsearch") as server:
        ensure_topics(broker.bootstrap, [live, canary, f"{live}.fb", f"{live}.dead", f"{live}.verdicts",
                                         f"{live}.spotcheck"])
        producer = multiprocessing.get_context("spawn").Process(
            target=produce, args=(broker.bootstrap, live, canary, args.events, 0)
        )
        producer.start()
        producer.join()
        if producer.exitcode != 0:
            raise SystemExit("producing the events failed")
        urls = {"none": None, "indexing": server.url, "unreachable": f"http://127.0.0.1:{free_port()}"}
        runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
        for round_no in range(1, args.rounds + 1):
            for mode in MODES:
                print(f"round {round_no}: {mode} ...", file=sys.stderr)
                spool = work / f"spool-{round_no}-{mode}"
                runs[mode].append(
                    consume(broker.bootstrap, live, canary, args.events, urls[mode], spool, mode == "indexing")
                )
    best = {mode: min(runs[mode], key=lambda run: run["seconds"]) for mode in MODES}
    figures: dict[str, Any] = {"events": args.events, "rounds": args.rounds}
    for mode in MODES:
        figures[f"{mode}_events_per_s"] = round(args.events / best[mode]["seconds"])
    for mode in MODES[1:]:
        figures[f"ratio_{mode}_vs_none"] = round(best["none"]["seconds"] / best[mode]["seconds"], 3)
    figures["documents_indexed"] = best["indexing"].get("indexed")
    figures["documents_spooled_unreachable"] = best["unreachable"].get("spooled")
    print(f"consumer {figures['none_events_per_s']:,} events/s without the sink, "
          f"{figures['indexing_events_per_s']:,} indexing, {figures['unreachable_events_per_s']:,} with "
          f"Elasticsearch unreachable", file=sys.stderr)
    print(orjson.dumps(figures).decode())


if __name__ == "__main__":
    main()
