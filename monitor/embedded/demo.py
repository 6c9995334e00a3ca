"""`driftgate demo`: an embedded broker, the sidecar and simulated traffic, watched live in the terminal."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from monitor.config import ElasticsearchSettings, Settings, parse_config
from monitor.core.verdict import Verdict
from monitor.embedded.api_thread import ApiThread
from monitor.embedded.broker import EmbeddedBroker
from monitor.embedded.elasticsearch import EmbeddedElasticsearch
from monitor.embedded.prometheus import MonitoringStack
from monitor.embedded.simulator import CLASSES, TrafficSimulator
from monitor.kafka.sink import KafkaSink
from monitor.server import build_sidecar
from monitor.sidecar.service import Sidecar
from monitor.sidecar.views import DeploymentView, Proportion
from monitor.sinks.elasticsearch.sink import ElasticsearchSink

DEPLOYMENT = "doc-classifier"
COLOURS = {"go": "green", "no_go": "red", "pending": "yellow", "inconclusive": "magenta"}
STATUS_COLOURS = {"pass": "green", "fail": "red", "warn": "yellow", "insufficient_data": "dim"}


@dataclass
class DemoOptions:
    scenario: str = "good"
    rate: float = 200.0
    port: int = 8080
    duration_s: float | None = None
    seed: int = 1
    with_elasticsearch: bool = False
    with_prometheus: bool = False


def demo_settings(bootstrap: str, port: int) -> Settings:
    """The demo's config: one deployment on the default topics, read from the start."""
    return parse_config(
        {
            "kafka": {"bootstrap_servers": bootstrap, "start_from": "earliest", "partition_assignment": "static",
                      "poll_timeout_s": 0.2},
            "api": {"host": "127.0.0.1", "port": port},
            # every demo starts a fresh broker, so a checkpoint of an earlier one would not fit
            "state": {"enabled": False},
            "deployments": [{"name": DEPLOYMENT, "classes": list(CLASSES)}],
        },
        {},
    )


def with_elasticsearch(settings: Settings, server: EmbeddedElasticsearch) -> Settings:
    """The demo's config with the sink writing to the demo's own server (its spool beside that server's data)."""
    sink = ElasticsearchSettings(hosts=[server.url], flush_interval_s=1.0, spool_dir=server.data_dir / "spool")
    return settings.model_copy(update={"elasticsearch": sink})


class TrafficThread:
    """Produces simulated traffic in real time at a steady rate of requests per second."""

    def __init__(
        self, settings: Settings, simulator: TrafficSimulator, rate: float, sidecar: Sidecar | None = None
    ) -> None:
        self.sink = KafkaSink(settings.kafka)
        self.topics = {
            "live": settings.deployments[0].topics.live,
            "canary": settings.deployments[0].topics.canary,
            "feedback": settings.deployments[0].topics.feedback,
        }
        self.simulator = simulator
        self.rate = rate
        self.requests = 0
        self.labels_sent = 0
        self.sidecar = sidecar
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="driftgate-traffic", daemon=True)

    def _run(self) -> None:
        start = time.monotonic()
        next_review = start + 2.0
        while not self._stop.is_set():
            due = int((time.monotonic() - start) * self.rate)
            while self.requests < due:
                for event in self.simulator.request(time.time()):
                    self.sink.send(self.topics[event.role], event.key.encode(), orjson.dumps(event.payload))
                self.requests += 1
            if self.sidecar is not None and time.monotonic() >= next_review:
                self._review()
                next_review = time.monotonic() + 2.0
            self._stop.wait(0.02)

    def _review(self) -> None:
        """Play the spot-checker: label about half of the queued disagreements with the truth."""
        assert self.sidecar is not None
        for case in self.sidecar.actions.review_queue(DEPLOYMENT)[::2]:
            truth = self.simulator.truth_of(case["request_id"])
            if truth is not None:
                self.sidecar.actions.submit_label(DEPLOYMENT, case["request_id"], truth)
                self.labels_sent += 1

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(5)
        self.sink.flush(5)
        self.sink.close()


def render(verdict: Verdict, view: DeploymentView, url: str, scenario: str, requests: int) -> Group:
    """The terminal view: verdict and reasons, each check, the class mix of both models."""
    colour = COLOURS[verdict.verdict]
    head = Text.assemble(
        ("verdict ", "bold"), (verdict.verdict.upper(), f"bold {colour}"),
        f"   canary {verdict.canary_version or '-'} vs live {verdict.live_version or '-'}",
        f"   scenario {scenario}   requests sent {requests}",
    )
    reasons = Text("\n".join(f"• {reason}" for reason in verdict.reasons))
    checks = Table(expand=True, show_edge=False)
    for column in ("check", "status", "value", "threshold", "detail"):
        checks.add_column(column, overflow="fold", ratio=4 if column == "detail" else 1)
    for check in verdict.checks:
        checks.add_row(
            check.name,
            Text(check.status, style=STATUS_COLOURS[check.status]),
            "-" if check.value is None else f"{check.value:.3f}",
            "-" if check.threshold is None else f"{check.threshold:.3f}",
            check.detail,
        )
    mix = Table(title="class mix in the current comparison", expand=True, show_edge=False)
    mix.add_column("class")
    mix.add_column("live")
    mix.add_column("canary")
    comparison = view.comparison
    counts = {"live": comparison.live, "canary": comparison.canary} if comparison else {"live": {}, "canary": {}}
    totals = {role: max(1, sum(by_class.values())) for role, by_class in counts.items()}
    for label in view.classes:
        cells = []
        for role in ("live", "canary"):
            share = counts[role].get(label, 0) / totals[role]
            cells.append(f"{'█' * round(share * 30):<30} {share * 100:5.1f}%")
        mix.add_row(label, *cells)
    parts: list[Any] = [mix]
    if comparison is not None:
        feedback = comparison.feedback
        quality = Table(title="from feedback: accuracy and precision (95% Wilson interval)", expand=True,
                        show_edge=False)
        quality.add_column("")
        quality.add_column("live")
        quality.add_column("canary")
        sides = (feedback.live, feedback.canary)
        quality.add_row("accuracy", *(_interval(side.accuracy) for side in sides))
        for label in view.classes:
            quality.add_row(f"precision {label}", *(_interval(side.precision[label]) for side in sides))
        parts.append(quality)
    samples = verdict.samples
    footer = Text(
        f"samples: live {samples['live']}, canary {samples['canary']}, feedback {samples['feedback']}, "
        f"spot-check labels {samples['spotcheck_labels']}"
        f"   dead letters {sum(view.dead_letters.values())}   open joins {view.join.open_requests}"
        f"\npage {url}/ui   API {url}/v1/deployments/{DEPLOYMENT}/verdict   metrics {url}/metrics   Ctrl-C stops",
        style="dim",
    )
    return Group(Panel(Group(head, reasons), border_style=colour), checks, *parts, footer)


def _interval(item: Proportion) -> str:
    if item.estimate is None:
        return "-"
    return f"{item.estimate * 100:5.1f}% [{item.lower * 100:.1f}, {item.upper * 100:.1f}] n={item.labelled}"


def run_demo(options: DemoOptions, console: Console | None = None) -> str:
    """Run everything until Ctrl-C (or ``duration_s``); returns the last verdict's name."""
    console = console or Console()
    broker = EmbeddedBroker()
    started: list[Callable[[], None]] = []
    try:
        broker.start()
        started.append(broker.stop)
        elasticsearch = EmbeddedElasticsearch().start() if options.with_elasticsearch else None
        if elasticsearch is not None:
            started.append(elasticsearch.stop)
        settings = demo_settings(broker.bootstrap, options.port)
        if elasticsearch is not None:
            settings = with_elasticsearch(settings, elasticsearch)
        sidecar = build_sidecar(settings)
        sidecar.start()

        def stop_sidecar() -> None:
            sidecar.stop()
            if elasticsearch is not None:
                console.print(indexed_summary(sidecar))

        started.append(stop_sidecar)
        api = ApiThread(settings, sidecar).start()
        started.append(api.stop)
        simulator = TrafficSimulator(options.scenario, DEPLOYMENT, options.seed)
        traffic = TrafficThread(settings, simulator, options.rate, sidecar)
        traffic.start()
        started.append(traffic.stop)
        console.print(
            f"broker {broker.bootstrap}   API {api.url}   page {api.url}/ui   scenario {options.scenario}"
        )
        if elasticsearch is not None:
            console.print(
                f"Elasticsearch {elasticsearch.url}   indices driftgate-windows-* (each closed minute), "
                "driftgate-verdicts-*, driftgate-spotcheck-*   Kibana: import dashboards/kibana/driftgate.ndjson",
                soft_wrap=True,
            )
        if options.with_prometheus:
            stack = MonitoringStack(api.url.removeprefix("http://")).start()
            started.append(stack.stop)
            assert stack.prometheus is not None and stack.alertmanager is not None
            console.print(
                f"Prometheus {stack.prometheus.url}   alerts {stack.prometheus.url}/alerts   "
                f"Alertmanager {stack.alertmanager.url}   (rules from alerts/; the no-go alert fires after 1m)"
            )
        return _watch(sidecar, api.url, traffic, options, console)
    except KeyboardInterrupt:
        return "interrupted"
    finally:
        for stop in reversed(started):
            stop()


def indexed_summary(sidecar: Sidecar) -> str:
    """What the Elasticsearch sink indexed, per kind of document."""
    counts: dict[str, int] = {}
    for attachment in sidecar.attachments:
        if isinstance(attachment, ElasticsearchSink):
            for (_, kind, outcome), n in attachment.counts().items():
                if outcome == "indexed":
                    counts[kind] = counts.get(kind, 0) + n
    return "Elasticsearch documents indexed: " + ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items()))


def _watch(sidecar: Sidecar, url: str, traffic: TrafficThread, options: DemoOptions, console: Console) -> str:
    deadline = None if options.duration_s is None else time.monotonic() + options.duration_s

    def view() -> Group:
        return render(sidecar.verdicts[DEPLOYMENT], sidecar.snapshot(DEPLOYMENT), url, options.scenario,
                      traffic.requests)

    if console.is_terminal:
        with Live(view(), console=console, refresh_per_second=2) as live:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.5)
                live.update(view())
    else:
        # Not a terminal (a log, a CI job): one line per verdict change instead of a live view.
        last = ""
        while deadline is None or time.monotonic() < deadline:
            verdict = sidecar.verdicts[DEPLOYMENT]
            line = f"{verdict.verdict}: {'; '.join(verdict.reasons)}"
            if line != last:
                console.print(f"[{verdict.samples['canary']} canary] {line}", soft_wrap=True)
                last = line
            time.sleep(0.5)
    return sidecar.verdicts[DEPLOYMENT].verdict
