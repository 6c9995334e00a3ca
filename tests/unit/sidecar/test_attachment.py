"""The attachment protocol: what the sidecar tells an attached sink, and when."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.api.app import create_app
from monitor.core.state.deployment import DeploymentState
from monitor.core.state.spotcheck import SpotcheckCase
from monitor.core.verdict import Verdict
from monitor.sidecar.service import Sidecar
from unit.api.test_app import call
from unit.sidecar.test_checkpoint import Clock, FakeSink, FakeSource, batches, run_until_drained, settings, stream


class Gauge(Collector):
    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("attached_gauge", "A gauge of an attachment.", value=7)


class EventLog:
    """Notes every call the sidecar makes, in order."""

    def __init__(self, fail_on_verdict: bool = False) -> None:
        self.calls: list[str] = []
        self.verdicts: list[Verdict] = []
        self.cases = 0
        self.fail_on_verdict = fail_on_verdict

    def notify(self, verdict: Verdict) -> None:
        self.calls.append("notify")
        self.verdicts.append(verdict)
        if self.fail_on_verdict:
            raise RuntimeError("a sink that fails")

    def add_cases(self, cases: list[SpotcheckCase]) -> None:
        self.calls.append("add_cases")
        self.cases += len(cases)

    def on_batch(self, states: Mapping[str, DeploymentState]) -> None:
        assert set(states) == {"docs", "mail"}
        self.calls.append("on_batch")

    def collectors(self) -> list[Collector]:
        return [Gauge()]

    def start(self) -> None:
        self.calls.append("start")

    def stop(self, timeout_s: float) -> None:
        self.calls.append("stop")


def test_an_attachment_is_started_told_of_batches_cases_and_verdicts_then_stopped_last() -> None:
    config = settings(state={"enabled": False})
    records = stream("mail", "collapse", 1200)
    source = FakeSource(batches(records))
    sink = FakeSink()
    sidecar = Sidecar(config, lambda: source, lambda: sink, clock=Clock())
    failing, log = EventLog(fail_on_verdict=True), EventLog()
    sidecar.attach(failing)  # attached first: what it raises must not keep the other from hearing
    sidecar.attach(log)
    run_until_drained(sidecar, source)
    assert log.calls[0] == "start" and log.calls[-1] == "stop"
    assert log.calls.count("on_batch") == len(batches(records))
    assert "mail" in {verdict.deployment for verdict in log.verdicts if verdict.verdict == "no_go"}
    assert [v.deployment for v in log.verdicts] == [v.deployment for v in failing.verdicts]
    # Cases picked for review reach the attachment exactly as they go to the spot-check topic.
    assert log.cases > 0
    assert log.cases == len([topic for topic, _, _ in sink.sent if topic == config.kafka.spotcheck_topic])


def test_an_attachments_collectors_are_served_on_metrics() -> None:
    config = settings(state={"enabled": False})
    sidecar = Sidecar(config, lambda: FakeSource([]), FakeSink, clock=Clock())
    sidecar.attach(EventLog())
    app = create_app(sidecar, [d.name for d in config.deployments])
    text = call(app, "GET", "/metrics").text
    assert "attached_gauge 7.0" in text
    assert "driftgate_events_total" in text  # beside the sidecar's own
