"""The running sidecar: a consumer thread feeding the state, verdicts evaluated beside it.

This module wires the pure core (ingest, state, verdicts) to the edges (a Kafka
source, a Kafka sink). The HTTP API and the Prometheus collector read from it
through :meth:`Sidecar.snapshot` and :attr:`Sidecar.verdicts`, which never block the
consumer for longer than one copy.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import orjson

from monitor.checks import live_divergence, reference_divergence_figures
from monitor.config import Settings
from monitor.ingest import UNROUTED, Ingest
from monitor.records import DeadLetter, Record
from monitor.verdict import Verdict, evaluate, iso_time

log = logging.getLogger(__name__)


class Source(Protocol):
    """Where records come from (see monitor.kafka_source)."""

    def poll(self, max_records: int, timeout_s: float) -> list[Record]: ...
    def commit(self, positions: dict[tuple[str, int], int]) -> None: ...
    def seek(self, positions: dict[tuple[str, int], int]) -> None: ...
    def ready(self) -> tuple[bool, str]: ...
    def close(self) -> None: ...


class Sink(Protocol):
    """Where dead letters and verdict changes go (see monitor.kafka_sink)."""

    def send(
        self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]] | None = None
    ) -> None: ...
    def dead_letter(self, letter: DeadLetter, topic: str) -> None: ...
    def flush(self, timeout_s: float = 10) -> int: ...
    def close(self) -> None: ...


VerdictListener = Callable[[Verdict], None]


class Sidecar:
    """Consumes, folds into state, evaluates verdicts and publishes their changes."""

    def __init__(
        self,
        settings: Settings,
        source_factory: Callable[[], Source],
        sink_factory: Callable[[], Sink],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.ingest = Ingest(settings)
        self.verdicts: dict[str, Verdict] = {}
        self.listeners: list[VerdictListener] = []
        self.started_at = clock()
        self._source_factory = source_factory
        self._sink_factory = sink_factory
        self._clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._source: Source | None = None
        self._sink: Sink | None = None
        self._last_error = ""
        self.evaluate_verdicts()

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start consuming in a background thread."""
        self._thread = threading.Thread(target=self._run, name="driftgate-consumer", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 20.0) -> None:
        """Stop consuming, publish the last verdicts, flush and close the edges."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self.evaluate_verdicts()
        if self._sink is not None:
            left = self._sink.flush(timeout_s)
            if left:
                log.warning("messages not delivered at shutdown", extra={"undelivered": left})
            self._sink.close()
        if self._source is not None:
            self._source.close()

    def ready(self) -> tuple[bool, str]:
        """Whether every input partition is assigned (and why not)."""
        if self._source is None:
            return False, self._last_error or "the Kafka consumer is starting"
        return self._source.ready()

    def _run(self) -> None:
        try:
            self._source = self._source_factory()
            self._sink = self._sink_factory()
        except Exception as error:  # the process stays up to say why on /readyz
            self._last_error = f"cannot start the Kafka client: {error}"
            log.exception("cannot start the Kafka client")
            return
        kafka = self.settings.kafka
        next_verdict = 0.0
        while not self._stop.is_set():
            try:
                records = self._source.poll(kafka.max_poll_records, kafka.poll_timeout_s)
                if records:
                    self.process(records)
                now = self._clock()
                if now >= next_verdict:
                    self.evaluate_verdicts()
                    next_verdict = now + self.settings.verdict_interval_s
            except Exception:  # nothing may stop the consumer; log and go on
                log.exception("error in the consumer loop")
                time.sleep(0.5)

    def process(self, records: list[Record]) -> None:
        """Fold one batch in, publish its dead letters, then commit its offsets."""
        assert self._source is not None and self._sink is not None
        with self._lock:
            dead = self.ingest.process(records, self._clock())
            positions = dict(self.ingest.positions)
        if dead:
            topic = self.settings.kafka.deadletter_topic
            for letter in dead:
                self._sink.dead_letter(letter, topic)
            # Dead letters must be on the broker before the offsets that skip them are committed.
            self._sink.flush(10.0)
        self._source.commit(positions)

    # -- verdicts -----------------------------------------------------------------------------

    def evaluate_verdicts(self) -> None:
        """Evaluate every deployment; publish and announce the verdicts that changed."""
        changed: list[Verdict] = []
        with self._lock:
            for deployment in self.settings.deployments:
                verdict = evaluate(deployment, self.ingest.states[deployment.name])
                previous = self.verdicts.get(deployment.name)
                self.verdicts[deployment.name] = verdict
                if verdict.changed_from(previous):
                    changed.append(verdict)
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
            for listener in self.listeners:
                try:
                    listener(verdict)
                except Exception:
                    log.exception("verdict listener failed")

    # -- reading ------------------------------------------------------------------------------

    def snapshot(self, name: str) -> dict[str, Any]:
        """The metric snapshot of one deployment as plain data (for the API and /metrics)."""
        deployment = self.settings.deployment(name)
        assert deployment is not None
        with self._lock:
            state = self.ingest.states[name]
            classes = list(state.classes)
            comparison = state.current
            predictions = {
                role: _sum_versions(by_version) for role, by_version in state.totals.items()
            }
            dead = {
                reason: n for (dep, reason), n in self.ingest.dead_letters.items() if dep == name
            }
            current: dict[str, Any] | None = None
            if comparison is not None:
                pairs = comparison.pairs
                current = {
                    "canary_version": comparison.canary_version or None,
                    "live_version": comparison.live_version(),
                    "started_at": iso_time(comparison.started_at),
                    "live": comparison.live.to_dict(),
                    "canary": comparison.canary.to_dict(),
                    "pairs": pairs,
                    "disagreements": comparison.disagreements,
                    "disagreement_rate": comparison.disagreements / pairs if pairs else None,
                    "divergence": {"live": _figures(live_divergence(classes, comparison))},
                }
                reference = deployment.reference.class_distribution
                if reference:
                    current["divergence"]["reference"] = _figures(
                        reference_divergence_figures(classes, comparison.canary.vector(classes), reference)
                    )
            snapshot = {
                "deployment": name,
                "classes": classes,
                "events": dict(state.events),
                "predictions": predictions,
                "dead_letters": dead,
                "comparison": current,
                "join": {"open_requests": len(state.join), **state.join.stats.to_dict()},
                "windows": [w.to_dict() for w in state.windows.recent()],
                "late_window_events": state.windows.late,
                "watermark": iso_time(state.watermark),
            }
        verdict = self.verdicts.get(name)
        snapshot["verdict"] = verdict.verdict if verdict else "pending"
        return snapshot

    def unrouted_dead_letters(self) -> dict[str, int]:
        """Dead letters by reason that belong to no configured deployment."""
        with self._lock:
            return {reason: n for (dep, reason), n in self.ingest.dead_letters.items() if dep == UNROUTED}

    def counts(self) -> dict[str, int]:
        """Conservation figures: consumed = processed + dead_lettered."""
        with self._lock:
            return {
                "consumed": self.ingest.consumed,
                "processed": self.ingest.processed,
                "dead_lettered": self.ingest.dead_lettered,
            }


def _sum_versions(by_version: dict[str, Any]) -> dict[str, int]:
    total: dict[str, int] = {}
    for counts in by_version.values():
        for label, n in counts.counts.items():
            total[label] = total.get(label, 0) + n
    return total


def _figures(figures: Any) -> dict[str, float]:
    return {"js": figures.js, "psi": figures.psi, "chi2_pvalue": figures.chi2_pvalue}
