"""Putting a sidecar together from settings and serving its API (blocking, or in a thread)."""

from __future__ import annotations

import contextlib
import gc
import logging
import signal
import threading
from collections.abc import Iterator
from types import FrameType

import uvicorn

from monitor.api.app import create_app
from monitor.config import Settings
from monitor.kafka.connect import open_source
from monitor.kafka.sink import KafkaSink
from monitor.kafka.topics import ensure_topics
from monitor.sidecar.service import Sidecar, Source
from monitor.sinks.webhooks import WebhookDispatcher

log = logging.getLogger(__name__)


def tune_garbage_collection() -> None:
    """Collect the young generation less often and leave start-up objects out of full collections.

    The hot path allocates a few short-lived containers per event (parsed JSON, records)
    and keeps hundreds of thousands of long-lived ones (open requests); with CPython's
    default thresholds, collections that walk the whole heap then cost more than the
    events themselves. The state holds no reference cycles, so collecting rarely loses
    nothing.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def input_topics(settings: Settings) -> list[str]:
    """Every topic the sidecar reads, each once, in config order."""
    topics: list[str] = []
    for deployment in settings.deployments:
        for topic in (deployment.topics.live, deployment.topics.canary, deployment.topics.feedback):
            if topic not in topics:
                topics.append(topic)
    return topics


def output_topics(settings: Settings) -> list[str]:
    kafka = settings.kafka
    return [kafka.deadletter_topic, kafka.verdicts_topic, kafka.spotcheck_topic]


def build_sidecar(settings: Settings) -> Sidecar:
    """A sidecar reading the configured Kafka (topics created first when asked to)."""
    kafka = settings.kafka
    topics = input_topics(settings)

    def source() -> Source:
        if kafka.create_topics:
            ensure_topics(kafka.bootstrap_servers, topics + output_topics(settings), options=dict(kafka.options))
        source: Source = open_source(kafka, topics)
        return source

    sidecar = Sidecar(settings, source_factory=source, sink_factory=lambda: KafkaSink(kafka))
    if settings.webhooks:
        sidecar.attach(WebhookDispatcher(settings.webhooks, [d.name for d in settings.deployments]))
    if settings.elasticsearch is not None:
        # Imported only when configured: the client brings pyarrow along when it is installed (60 MB).
        from monitor.sinks.elasticsearch.sink import open_sink

        sidecar.attach(open_sink(settings))
    return sidecar


class ApiServer(uvicorn.Server):
    """uvicorn's server, told to stop by SIGTERM/SIGINT without re-raising the signal afterwards.

    uvicorn re-raises a captured signal once it has shut down, which would end the process
    before the sidecar has flushed and published its last verdicts.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        originals = {sig: signal.signal(sig, self._stop_serving) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)

    def _stop_serving(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        self.should_exit = True


def uvicorn_config(settings: Settings, sidecar: Sidecar, port: int | None = None) -> uvicorn.Config:
    app = create_app(
        sidecar,
        [d.name for d in settings.deployments],
        token=settings.api.token,
        max_body_bytes=settings.api.max_body_bytes,
    )
    return uvicorn.Config(
        app,
        host=settings.api.host,
        port=settings.api.port if port is None else port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )


def run(settings: Settings) -> None:
    """Run the sidecar and its API until SIGINT or SIGTERM; then stop consuming, flush, exit."""
    sidecar = build_sidecar(settings)
    tune_garbage_collection()
    sidecar.start()
    server = ApiServer(uvicorn_config(settings, sidecar))
    log.info("serving", extra={"host": settings.api.host, "port": settings.api.port})
    try:
        server.run()
    finally:
        sidecar.stop()  # and its attachments, after its last verdicts
        log.info("stopped")
