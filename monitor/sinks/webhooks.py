"""Verdict-change webhooks: signed POSTs, retried with back-off, sent from a bounded queue per URL.

A :class:`WebhookDispatcher` is attached to the sidecar (``sidecar.attach(dispatcher)``).
:meth:`~WebhookDispatcher.notify` only puts the verdict on each URL's queue, so the thread
that evaluates verdicts never waits for a slow receiver. One worker thread per URL delivers
in order:

- the body is the verdict object (``format: json``) or a Slack-compatible message asking
  "deploy v42?" (``format: slack``);
- ``X-Driftgate-Signature: sha256=<hex HMAC-SHA256 of the raw body>`` when a secret is set;
- ``Idempotency-Key``: the same for every attempt of one delivery, so a receiver that got an
  attempt whose answer was lost can recognise the retry;
- connection errors, timeouts, 5xx and 429 are retried, up to ``max_attempts`` attempts, with
  exponential back-off and full jitter (a tenacity ``Retrying`` loop; ``Retry-After``, seconds or
  an HTTP-date, is honoured up to ``max_backoff_s``); any other answer is final;
- a full queue drops its oldest delivery: a newer verdict matters more than an older one.

Every outcome is counted per deployment, URL host and outcome (:data:`OUTCOMES`), readable
with :meth:`WebhookDispatcher.counts`. Secrets, and URL paths (a Slack webhook URL is itself
a secret), are never logged: logs name the URL's host only.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import httpx
import orjson
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from tenacity import RetryCallState, Retrying, retry_if_result, stop_after_attempt

from monitor import __version__
from monitor.config import WebhookSettings
from monitor.core.state.deployment import DeploymentState
from monitor.core.state.spotcheck import SpotcheckCase
from monitor.core.verdict import Verdict
from monitor.sinks.retry import backoff_wait, retry_after_s, retryable

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Driftgate-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
OUTCOMES = ("delivered", "failed", "dropped", "retries")


class DeliveryKey(NamedTuple):
    """The labels of one delivery counter."""

    deployment: str
    url_host: str
    outcome: str


# -- what is sent --------------------------------------------------------------------------------


def signature(secret: str, body: bytes) -> str:
    """The X-Driftgate-Signature value: ``sha256=`` and the hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def idempotency_key(verdict: dict[str, Any]) -> str:
    """A key that names one verdict change: the same for every attempt and every URL."""
    parts = (verdict.get(name) for name in ("deployment", "canary_version", "verdict", "evaluated_at"))
    return hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).hexdigest()


def url_host(url: str) -> str:
    """The host (and port, when given) of a URL: safe to log and to use as a metric label."""
    parts = urlsplit(url)
    host = parts.hostname or "unknown"
    return f"{host}:{parts.port}" if parts.port else host


def render_body(fmt: str, verdict: dict[str, Any]) -> bytes:
    """The bytes POSTed for a verdict in the given format."""
    return orjson.dumps(slack_message(verdict) if fmt == "slack" else verdict)


def retry_wait(base_s: float, cap_s: float) -> Callable[[RetryCallState], float]:
    """The wait before the next attempt, as a tenacity wait strategy.

    Full jitter (tenacity's ``wait_random_exponential``): a uniform wait up to
    ``base_s * 2**(attempt-1)``, never over ``cap_s``. Randomising the whole wait (not only a
    part of it) spreads the retries of many senders that failed together, so a receiver coming
    back is not hit by all of them at once. A longer ``Retry-After`` from the receiver (seconds or
    an HTTP-date) is waited instead, up to ``cap_s`` (:mod:`monitor.sinks.retry`, as for Elasticsearch).
    """
    return backoff_wait(base_s, cap_s, lambda state: _last_attempt(state).retry_after_s)


# -- the Slack-compatible message -----------------------------------------------------------------

_ANSWERS = {
    "go": (":large_green_circle:", "GO", "yes, every blocking check passes"),
    "no_go": (":red_circle:", "NO-GO", "no, a blocking check fails"),
    "pending": (":hourglass_flowing_sand:", "PENDING", "not yet, too little data to decide"),
    "inconclusive": (":white_circle:", "INCONCLUSIVE", "undecided, the decision window ran out"),
}
_CHECK_LABELS = {
    "class_divergence": "JS distance to live",
    "reference_divergence": "JS distance to reference",
    "collapse": "largest class share",
    "disagreement": "disagreement rate",
}
_SHARE_CHECKS = frozenset({"collapse", "disagreement"})
_STATUS_WORDS = {"pass": "ok", "fail": "FAIL", "warn": "warn", "insufficient_data": "waiting"}


def _figure(check: str, value: Any) -> str:
    if not isinstance(value, int | float):
        return "-"
    return f"{value * 100:.0f}%" if check in _SHARE_CHECKS else f"{value:.3f}"


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "-"


def figures_table(verdict: dict[str, Any]) -> str:
    """New (canary), baseline (live) and current figures side by side, as monospace text."""
    samples = verdict.get("samples") or {}
    header = ["", f"new {verdict.get('canary_version') or ''}".strip(),
              f"baseline {verdict.get('live_version') or ''}".strip(), "current", "limit", "status"]
    rows = [header, ["predictions", _count(samples.get("canary")), _count(samples.get("live")), "", "", ""]]
    if samples.get("feedback"):
        rows.append(["feedback events", "", "", _count(samples["feedback"]), "", ""])
    for check in verdict.get("checks") or []:
        name = str(check.get("name", "?"))
        rows.append([
            _CHECK_LABELS.get(name, name.replace("_", " ")), "", "",
            _figure(name, check.get("value")), _figure(name, check.get("threshold")),
            _STATUS_WORDS.get(str(check.get("status")), str(check.get("status"))),
        ])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join([row[0].ljust(widths[0]), *(cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True))])
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines)


def slack_message(verdict: dict[str, Any]) -> dict[str, Any]:
    """A Slack-compatible message (``text`` and ``blocks``) asking whether to deploy the canary."""
    name = str(verdict.get("deployment", "?"))
    question = f"deploy {verdict.get('canary_version') or 'the canary'}?"
    emoji, word, answer = _ANSWERS.get(str(verdict.get("verdict")), (":grey_question:", "UNKNOWN", "unknown"))
    reasons = [str(reason) for reason in verdict.get("reasons") or []]
    text = f"{name}: {question} driftgate says {word}" + (f": {reasons[0]}" if reasons else "")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(f"{name}: {question}", 150)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{emoji} driftgate says *{word}*: {answer}"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _clip_code(figures_table(verdict), 3000)}},
    ]
    if reasons:
        bullets = "\n".join(f"• {reason}" for reason in reasons[:10])
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _clip(bullets, 3000)}})
    blocks.append({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": f"evaluated at {verdict.get('evaluated_at') or 'no event yet'}"}],
    })
    return {"text": _clip(text, 3000), "blocks": blocks}


def _clip(text: str, limit: int) -> str:
    """Slack refuses a block whose text is over its limit, so cut it with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clip_code(text: str, limit: int) -> str:
    return "```\n" + _clip(text, limit - 8) + "\n```"


# -- delivery ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """One verdict change to deliver to one URL."""

    deployment: str
    verdict: dict[str, Any]
    key: str


@dataclass(frozen=True)
class Attempt:
    """What one POST gave: delivered, retryable (with the receiver's Retry-After) or final failure."""

    delivered: bool
    retryable: bool
    status: int | None
    error: str | None = None
    retry_after_s: float | None = None


def classify(response: httpx.Response) -> Attempt:
    """2xx delivers; 429 and 5xx are worth retrying; any other answer will not change on retry."""
    status = response.status_code
    if 200 <= status < 300:
        return Attempt(True, False, status)
    again = retryable(status)
    return Attempt(False, again, status, retry_after_s=retry_after_s(response.headers) if again else None)


def _last_attempt(state: RetryCallState) -> Attempt:
    """What the last POST of a tenacity retry loop gave."""
    assert state.outcome is not None
    attempt: Attempt = state.outcome.result()
    return attempt


class _ShutdownDeadline(Exception):
    """Raised by the back-off sleep when the shutdown deadline comes before its end: give up."""


class _Target:
    """One webhook URL: its queue, its worker thread and its HTTP client."""

    def __init__(
        self, settings: WebhookSettings, owner: WebhookDispatcher, transport: httpx.BaseTransport | None
    ) -> None:
        self.settings = settings
        self.host = url_host(settings.url)
        self._owner = owner
        self._transport = transport
        self._queue: deque[Delivery] = deque()
        self._ready = threading.Condition()
        self._closing = threading.Event()
        self._deadline: float | None = None
        # Retry what is worth it, with full-jitter back-off, until max_attempts; the last answer then
        # stands. The sleep is the closing event's wait, so stop() cuts it short (see _sleep).
        self._retrying = Retrying(
            stop=stop_after_attempt(settings.max_attempts),
            wait=retry_wait(settings.backoff_s, settings.max_backoff_s),
            retry=retry_if_result(lambda attempt: attempt.retryable),
            sleep=self._sleep,
            retry_error_callback=_last_attempt,
        )
        self.thread = threading.Thread(target=self._run, name=f"driftgate-webhook-{self.host}", daemon=True)

    # -- called from other threads --------------------------------------------------------------

    def put(self, delivery: Delivery) -> None:
        with self._ready:
            if self._closing.is_set():
                self._owner.count(delivery.deployment, self.host, "dropped")
                return
            if len(self._queue) >= self.settings.queue_size:
                oldest = self._queue.popleft()
                self._owner.count(oldest.deployment, self.host, "dropped")
                log.warning(
                    "webhook queue full: dropped the oldest delivery",
                    extra={"url_host": self.host, "deployment": oldest.deployment,
                           "verdict": oldest.verdict.get("verdict"), "queue_size": self.settings.queue_size},
                )
            self._queue.append(delivery)
            self._ready.notify()

    def close(self, deadline: float) -> None:
        with self._ready:
            self._deadline = deadline
            self._closing.set()
            self._ready.notify_all()

    def pending(self) -> int:
        with self._ready:
            return len(self._queue)

    # -- the worker thread ----------------------------------------------------------------------

    def _run(self) -> None:
        headers = {"Content-Type": "application/json", "User-Agent": f"driftgate/{__version__}"}
        with httpx.Client(timeout=self.settings.timeout_s, headers=headers, transport=self._transport) as client:
            while (delivery := self._take()) is not None:
                try:
                    self._deliver(client, delivery)
                except Exception:  # a bug must not end the worker: count it, log it, go on
                    self._owner.count(delivery.deployment, self.host, "failed")
                    log.exception("webhook delivery crashed", extra={"url_host": self.host})
        self._abandon_rest()

    def _take(self) -> Delivery | None:
        """The next delivery; None once closing and the queue is empty or the deadline is over."""
        with self._ready:
            while not self._queue and not self._closing.is_set():
                self._ready.wait()
            if not self._queue or self._past_deadline():
                return None
            return self._queue.popleft()

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _abandon_rest(self) -> None:
        with self._ready:
            left = list(self._queue)
            self._queue.clear()
        for delivery in left:
            self._owner.count(delivery.deployment, self.host, "dropped")
        if left:
            log.warning("webhook deliveries left undelivered at shutdown",
                        extra={"url_host": self.host, "undelivered": len(left)})

    def _deliver(self, client: httpx.Client, delivery: Delivery) -> None:
        body = render_body(self.settings.format, delivery.verdict)
        headers = {IDEMPOTENCY_HEADER: delivery.key}
        if self.settings.secret:
            headers[SIGNATURE_HEADER] = signature(self.settings.secret, body)
        attempts: list[Attempt] = []

        def attempt() -> Attempt:
            if attempts:  # an extra attempt, made after a back-off that ran to its end
                self._owner.count(delivery.deployment, self.host, "retries")
            attempts.append(self._post(client, body, headers))
            return attempts[-1]

        try:
            result = self._retrying(attempt)
        except _ShutdownDeadline:
            result = attempts[-1]
        if result.delivered:
            self._owner.count(delivery.deployment, self.host, "delivered")
            return
        log.warning(
            "webhook delivery failed",
            extra={"url_host": self.host, "deployment": delivery.deployment, "attempts": len(attempts),
                   "status": result.status, "error": result.error},
        )
        # Counted once logged: whoever sees the count can find the log line.
        self._owner.count(delivery.deployment, self.host, "failed")

    def _post(self, client: httpx.Client, body: bytes, headers: dict[str, str]) -> Attempt:
        try:
            return classify(client.post(self.settings.url, content=body, headers=headers))
        except httpx.TransportError as error:
            # Only the class name: some httpx messages carry the URL, whose path may be a secret.
            return Attempt(False, True, None, error=type(error).__name__)
        except httpx.HTTPError as error:
            return Attempt(False, False, None, error=type(error).__name__)

    def _sleep(self, delay_s: float) -> None:
        """tenacity's sleep before a retry; raises _ShutdownDeadline when the deadline comes first."""
        until = time.monotonic() + delay_s
        while (now := time.monotonic()) < until:
            if self._deadline is not None and until > self._deadline:
                raise _ShutdownDeadline
            if self._closing.is_set():
                time.sleep(until - now)  # closing with time left: finish this back-off, then retry
            else:
                self._closing.wait(until - now)  # woken early by stop() to re-check the deadline


class WebhookDispatcher:
    """Delivers verdict changes to the configured webhooks without ever blocking the caller.

    Attach it to the sidecar (``sidecar.attach(dispatcher)``): the sidecar stops it after its
    own last verdicts, so those go out too. :meth:`counts` gives the delivery counters, served
    on /metrics as ``driftgate_webhook_deliveries_total{deployment, url_host, outcome}``.
    """

    def __init__(
        self,
        settings: Sequence[WebhookSettings],
        deployments: Sequence[str] = (),
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._counts: dict[DeliveryKey, int] = {}
        self._lock = threading.Lock()
        self._targets = [_Target(webhook, self, transport) for webhook in settings]
        # Every series exists from the start at 0, so a rate() over it works from the first failure.
        for deployment in deployments:
            for target in self._targets:
                for outcome in OUTCOMES:
                    self._counts.setdefault(DeliveryKey(deployment, target.host, outcome), 0)
        for target in self._targets:
            target.thread.start()

    def notify(self, verdict: Verdict) -> None:
        """Queue the verdict for every webhook; returns at once."""
        data = verdict.to_dict()
        delivery = Delivery(verdict.deployment, data, idempotency_key(data))
        for target in self._targets:
            target.put(delivery)

    def add_cases(self, cases: list[SpotcheckCase]) -> None:
        """Cases picked for review are not announced by webhook."""

    def on_batch(self, states: Mapping[str, DeploymentState]) -> None:
        """Batches are not announced by webhook."""

    def collectors(self) -> list[Collector]:
        return [DeliveryCollector(self)]

    def start(self) -> None:
        """The workers started with the dispatcher: a verdict may be queued before the sidecar starts."""

    def count(self, deployment: str, host: str, outcome: str) -> None:
        """Add one to a counter (called by the workers)."""
        key = DeliveryKey(deployment, host, outcome)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1

    def counts(self) -> dict[DeliveryKey, int]:
        """A copy of every counter: (deployment, url_host, outcome) -> total since start.

        ``outcome`` is one of :data:`OUTCOMES`: ``delivered`` and ``failed`` count deliveries
        (``failed``: retries exhausted or a final 4xx), ``dropped`` deliveries pushed out of a
        full queue or left at shutdown, ``retries`` the extra attempts made.
        """
        with self._lock:
            return dict(self._counts)

    def pending(self) -> int:
        """Deliveries still waiting in the queues."""
        return sum(target.pending() for target in self._targets)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Deliver what can be delivered within ``timeout_s``; what is left is counted as dropped."""
        deadline = time.monotonic() + timeout_s
        for target in self._targets:
            target.close(deadline)
        for target in self._targets:
            target.thread.join(max(0.0, deadline - time.monotonic()) + 0.1)


class DeliveryCollector(Collector):
    """The dispatcher's delivery counters for /metrics, read at scrape time."""

    def __init__(self, dispatcher: WebhookDispatcher) -> None:
        self.dispatcher = dispatcher

    def collect(self) -> Iterator[Metric]:
        deliveries = CounterMetricFamily(
            "driftgate_webhook_deliveries", "Webhook deliveries by outcome (retries: extra attempts).",
            labels=["deployment", "url_host", "outcome"],
        )
        for (deployment, host, outcome), n in self.dispatcher.counts().items():
            deliveries.add_metric([deployment, host, outcome], n)
        yield deliveries
