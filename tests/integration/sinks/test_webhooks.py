"""Tests of monitor.sinks.webhooks: delivery to a real HTTP receiver on loopback (what is sent,
and the retry waits, are tested without a network in tests/unit/sinks/test_webhooks.py).

The receiver is a ``ThreadingHTTPServer`` answering from a script of status codes, so a test
can make it fail a few times, refuse, or hold a request open. The last test wires the
dispatcher into a sidecar built by ``monitor.server.build_sidecar`` and feeds it through the
real broker.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer
from unit.sinks.test_webhooks import FAST, SECRET, make_verdict

from monitor.config import WebhookSettings, parse_config
from monitor.embedded.loopback import free_port
from monitor.embedded.simulator import TrafficSimulator
from monitor.server import build_sidecar
from monitor.sinks.webhooks import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    DeliveryKey,
    WebhookDispatcher,
    idempotency_key,
    signature,
)

# -- a receiver on loopback ---------------------------------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int


class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST and answers from a script of statuses."""

    def __init__(self, statuses: Iterable[int] = (), hold: threading.Event | None = None) -> None:
        self.requests: list[Received] = []
        self.entered = threading.Event()
        self._statuses = deque(statuses)
        self._hold = hold
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/driftgate"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.entered.set()
                if receiver._hold is not None:
                    receiver._hold.wait(10)
                with receiver._lock:
                    status = receiver._statuses.popleft() if receiver._statuses else 200
                    receiver.requests.append(Received(dict(self.headers.items()), body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

        return Handler

    def wait_for(self, n: int, timeout_s: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.requests) >= n:
                    return list(self.requests)
            time.sleep(0.01)
        raise AssertionError(f"expected {n} requests, got {len(self.requests)}")

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._hold is not None:
            self._hold.set()
        self.server.shutdown()
        self.server.server_close()


def hook(url: str, **options: Any) -> WebhookSettings:
    return WebhookSettings.model_validate({"url": url, **FAST, **options})


@pytest.fixture
def dispatchers() -> Iterator[list[WebhookDispatcher]]:
    """Dispatchers made by a test, stopped at its end whatever happens."""
    made: list[WebhookDispatcher] = []
    yield made
    for dispatcher in made:
        dispatcher.stop(1.0)


def dispatcher_for(made: list[WebhookDispatcher], *hooks: WebhookSettings) -> WebhookDispatcher:
    dispatcher = WebhookDispatcher(list(hooks), ["doc-classifier"])
    made.append(dispatcher)
    return dispatcher


def wait_counts(dispatcher: WebhookDispatcher, outcome: str, n: int, timeout_s: float = 10.0) -> dict[str, int]:
    """Wait until an outcome reaches n; return the totals per outcome."""
    deadline = time.monotonic() + timeout_s
    while True:
        totals: dict[str, int] = {}
        for key, value in dispatcher.counts().items():
            totals[key.outcome] = totals.get(key.outcome, 0) + value
        if totals.get(outcome, 0) >= n or time.monotonic() > deadline:
            return totals
        time.sleep(0.01)


# -- delivery to a real receiver ----------------------------------------------------------------


@pytest.mark.integration
def test_a_signed_post_arrives_and_verifies(dispatchers: list[WebhookDispatcher]) -> None:
    with Receiver() as receiver:
        dispatcher = dispatcher_for(dispatchers, hook(receiver.url, secret=SECRET))
        verdict = make_verdict()
        dispatcher.notify(verdict)
        (request,) = receiver.wait_for(1)
    assert request.body == orjson.dumps(verdict.to_dict())
    expected = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers[SIGNATURE_HEADER], f"sha256={expected}")
    assert request.headers[IDEMPOTENCY_HEADER] == idempotency_key(verdict.to_dict())
    assert request.headers["Content-Type"] == "application/json"
    assert wait_counts(dispatcher, "delivered", 1)["delivered"] == 1


def example_receiver() -> ModuleType:
    """examples/webhook_receiver.py, the verification the docs show."""
    path = Path(__file__).resolve().parents[3] / "examples" / "webhook_receiver.py"
    spec = importlib.util.spec_from_file_location("webhook_receiver", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.integration
def test_the_documented_receiver_verifies_a_real_delivery(dispatchers: list[WebhookDispatcher]) -> None:
    verified = example_receiver().verified
    with Receiver() as receiver:
        dispatcher_for(dispatchers, hook(receiver.url, secret=SECRET)).notify(make_verdict())
        (request,) = receiver.wait_for(1)
    assert verified(request.body, request.headers[SIGNATURE_HEADER], SECRET)
    assert not verified(request.body + b" ", request.headers[SIGNATURE_HEADER], SECRET)
    assert not verified(request.body, request.headers[SIGNATURE_HEADER], "another secret")
    assert not verified(request.body, None, SECRET)


@pytest.mark.integration
def test_no_signature_header_without_a_secret(dispatchers: list[WebhookDispatcher]) -> None:
    with Receiver() as receiver:
        dispatcher_for(dispatchers, hook(receiver.url)).notify(make_verdict())
        (request,) = receiver.wait_for(1)
    assert SIGNATURE_HEADER not in request.headers


@pytest.mark.integration
def test_three_failures_then_success_delivers_exactly_once_with_one_key(dispatchers: list[WebhookDispatcher]) -> None:
    with Receiver(statuses=[500, 503, 500, 200]) as receiver:
        dispatcher = dispatcher_for(dispatchers, hook(receiver.url, secret=SECRET))
        dispatcher.notify(make_verdict())
        requests = receiver.wait_for(4)
        totals = wait_counts(dispatcher, "delivered", 1)
        time.sleep(0.2)  # nothing more may arrive once delivered
        assert len(receiver.requests) == 4
    assert [r.status for r in requests] == [500, 503, 500, 200]
    assert len({r.headers[IDEMPOTENCY_HEADER] for r in requests}) == 1
    assert len({r.body for r in requests}) == 1
    assert sum(1 for r in requests if r.status == 200) == 1
    assert totals == {"delivered": 1, "failed": 0, "dropped": 0, "retries": 3}


@pytest.mark.integration
def test_429_is_retried(dispatchers: list[WebhookDispatcher]) -> None:
    with Receiver(statuses=[429, 200]) as receiver:
        dispatcher = dispatcher_for(dispatchers, hook(receiver.url))
        dispatcher.notify(make_verdict())
        receiver.wait_for(2)
        assert wait_counts(dispatcher, "delivered", 1)["retries"] == 1


@pytest.mark.integration
def test_a_4xx_is_final_and_not_retried(dispatchers: list[WebhookDispatcher]) -> None:
    with Receiver(statuses=[400, 200]) as receiver:
        dispatcher = dispatcher_for(dispatchers, hook(receiver.url))
        dispatcher.notify(make_verdict())
        receiver.wait_for(1)
        totals = wait_counts(dispatcher, "failed", 1)
        time.sleep(0.2)
        assert len(receiver.requests) == 1
    assert totals == {"delivered": 0, "failed": 1, "dropped": 0, "retries": 0}


@pytest.mark.integration
def test_an_unreachable_url_is_counted_failed_after_max_attempts(
    dispatchers: list[WebhookDispatcher], caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()  # bound and released: nothing listens there
    url = f"http://127.0.0.1:{port}/secret-path-token"
    with caplog.at_level(logging.DEBUG, logger="monitor.sinks.webhooks"):
        dispatcher = dispatcher_for(dispatchers, hook(url, secret=SECRET, max_attempts=3))
        dispatcher.notify(make_verdict())
        totals = wait_counts(dispatcher, "failed", 1)
    assert totals == {"delivered": 0, "failed": 1, "dropped": 0, "retries": 2}
    assert dispatcher.counts()[DeliveryKey("doc-classifier", f"127.0.0.1:{port}", "failed")] == 1
    logged = " ".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert "webhook delivery failed" in logged
    assert SECRET not in logged and "secret-path-token" not in logged


@pytest.mark.integration
def test_a_full_queue_drops_the_oldest_and_counts_it(dispatchers: list[WebhookDispatcher]) -> None:
    hold = threading.Event()
    with Receiver(hold=hold) as receiver:
        dispatcher = dispatcher_for(dispatchers, hook(receiver.url, queue_size=2))
        stamps = [f"2026-11-23T10:0{i}:00.000Z" for i in range(5)]
        dispatcher.notify(make_verdict(evaluated_at=stamps[0]))
        assert receiver.entered.wait(5)  # the worker holds the first delivery open at the receiver
        started = time.monotonic()
        for stamp in stamps[1:]:
            dispatcher.notify(make_verdict(evaluated_at=stamp))
        assert time.monotonic() - started < 0.5  # notify never waits for the receiver
        assert dispatcher.pending() == 2
        hold.set()
        requests = receiver.wait_for(3)
        totals = wait_counts(dispatcher, "delivered", 3)
    delivered = [orjson.loads(r.body)["evaluated_at"] for r in requests]
    assert delivered == [stamps[0], stamps[3], stamps[4]]  # 1 and 2, the oldest waiting, were dropped
    assert totals == {"delivered": 3, "failed": 0, "dropped": 2, "retries": 0}


@pytest.mark.integration
def test_slack_format_posts_the_question_and_figures(dispatchers: list[WebhookDispatcher]) -> None:
    with Receiver() as receiver:
        dispatcher_for(dispatchers, hook(receiver.url, format="slack", secret=SECRET)).notify(make_verdict())
        (request,) = receiver.wait_for(1)
    message = orjson.loads(request.body)
    assert set(message) == {"text", "blocks"}
    assert "deploy v42?" in message["text"]
    text = orjson.dumps(message["blocks"]).decode()
    assert "5,034" in text and "5,120" in text and "0.412" in text and "95%" in text and "31%" in text
    assert request.headers[SIGNATURE_HEADER] == signature(SECRET, request.body)


@pytest.mark.integration
def test_each_url_has_its_own_queue(dispatchers: list[WebhookDispatcher]) -> None:
    hold = threading.Event()
    with Receiver(hold=hold) as slow, Receiver() as fast:
        dispatcher = dispatcher_for(dispatchers, hook(slow.url), hook(fast.url))
        dispatcher.notify(make_verdict())
        fast.wait_for(1, timeout_s=2)  # not held up by the slow receiver
        hold.set()
        slow.wait_for(1)


@pytest.mark.integration
def test_stop_flushes_what_is_queued() -> None:
    with Receiver() as receiver:
        dispatcher = WebhookDispatcher([hook(receiver.url)])
        for i in range(5):
            dispatcher.notify(make_verdict(evaluated_at=f"2026-11-23T10:0{i}:00.000Z"))
        dispatcher.stop(5.0)
        assert len(receiver.requests) == 5
        dispatcher.notify(make_verdict("go"))  # after stop: counted, not sent
    assert sum(v for k, v in dispatcher.counts().items() if k.outcome == "dropped") == 1


@pytest.mark.integration
def test_stop_gives_up_on_a_receiver_that_keeps_failing() -> None:
    with Receiver(statuses=[500] * 100) as receiver:
        dispatcher = WebhookDispatcher([hook(receiver.url, max_attempts=100, backoff_s=0.5, max_backoff_s=0.5)])
        dispatcher.notify(make_verdict())
        dispatcher.notify(make_verdict("go"))
        receiver.wait_for(1)
        started = time.monotonic()
        dispatcher.stop(0.3)
        assert time.monotonic() - started < 2.5
    totals: dict[str, int] = {}
    for key, value in dispatcher.counts().items():
        totals[key.outcome] = totals.get(key.outcome, 0) + value
    # The first gave up when its next back-off would pass the deadline; the second was tried
    # in the time left, or dropped if none was left. None is lost without being counted.
    failed, dropped = totals.get("failed", 0), totals.get("dropped", 0)
    assert failed >= 1 and failed + dropped == 2 and "delivered" not in totals


# -- wired into a sidecar on the real broker ----------------------------------------------------


@pytest.mark.integration
def test_a_sidecar_posts_its_verdict_change_to_the_webhook(broker: Any) -> None:
    suffix = uuid.uuid4().hex[:8]
    topics = {role: f"webhook.{role}.{suffix}" for role in ("live", "canary", "feedback")}
    with Receiver() as receiver:
        settings = parse_config({
            "kafka": {"bootstrap_servers": broker.bootstrap, "start_from": "earliest",
                      "partition_assignment": "static", "group_id": f"webhook-{suffix}",
                      "deadletter_topic": f"dead.{suffix}", "verdicts_topic": f"verdicts.{suffix}",
                      "spotcheck_topic": f"spot.{suffix}", "poll_timeout_s": 0.2},
            "verdict_interval_s": 0.2,
            "state": {"enabled": False},
            "webhooks": [{"url": receiver.url, "secret": SECRET, **FAST}],
            "deployments": [{"name": "collapse", "topics": topics, "classes": ["invoice", "contract", "other"]}],
        }, {})
        sidecar = build_sidecar(settings)
        sidecar.start()
        try:
            producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 20})
            simulator = TrafficSimulator("collapse", deployment="collapse", seed=11)
            for event in simulator.stream(800, start_ts=1_800_000_000.0, rate_per_s=100):
                producer.produce(topics[event.role], orjson.dumps(event.payload), event.key.encode())
            assert producer.flush(30) == 0
            deadline = time.monotonic() + 60
            while not any(orjson.loads(r.body)["verdict"] == "no_go" for r in receiver.requests):
                assert time.monotonic() < deadline, [orjson.loads(r.body)["verdict"] for r in receiver.requests]
                time.sleep(0.1)
        finally:
            sidecar.stop(5.0)
    last = next(r for r in receiver.requests if orjson.loads(r.body)["verdict"] == "no_go")
    verdict = orjson.loads(last.body)
    assert verdict["deployment"] == "collapse" and verdict["canary_version"] == "v42"
    assert last.headers[SIGNATURE_HEADER] == signature(SECRET, last.body)
    assert last.headers[IDEMPOTENCY_HEADER] == idempotency_key(verdict)
