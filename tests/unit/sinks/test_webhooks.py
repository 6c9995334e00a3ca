"""Tests of monitor.sinks.webhooks without a network: what is sent, how long a retry waits, and
delivery through an in-memory transport (a real receiver on loopback is in tests/integration/sinks).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import deque
from typing import Any

import httpx
import orjson
import pytest
from tenacity import RetryCallState, Retrying

from monitor.config import WebhookSettings, parse_config
from monitor.core.checks import CheckResult
from monitor.core.verdict import Verdict
from monitor.errors import ConfigError
from monitor.sinks.webhooks import (
    Attempt,
    DeliveryKey,
    WebhookDispatcher,
    classify,
    figures_table,
    idempotency_key,
    retry_wait,
    signature,
    slack_message,
    url_host,
)

SECRET = "s3cret-for-tests"
FAST = {"backoff_s": 0.01, "max_backoff_s": 0.05, "timeout_s": 2.0}


def make_verdict(verdict: str = "no_go", evaluated_at: str = "2026-11-23T10:05:00.000Z") -> Verdict:
    checks = [
        CheckResult("class_divergence", "fail", 0.412, 0.05,
                    "canary class distribution differs from live: JS distance 0.412 > 0.050", True),
        CheckResult("collapse", "fail", 0.95, 0.8,
                    "canary collapsed onto 'invoice': 95% of its answers (live: 50%), over the limit of 80%", True),
        CheckResult("disagreement", "warn", 0.31, 0.2, "the models disagree on 31% of 4980 shared requests", False),
    ]
    reasons = ["every blocking check passes"]
    if verdict == "no_go":
        reasons = [c.detail for c in checks if c.status == "fail"]
    return Verdict(
        "doc-classifier", verdict, reasons, checks,  # type: ignore[arg-type]
        {"live": 5120, "canary": 5034, "feedback": 812, "spotcheck_labels": 0},
        "v41", "v42", evaluated_at,
    )


def hook(url: str, **options: Any) -> WebhookSettings:
    return WebhookSettings.model_validate({"url": url, **FAST, **options})


def test_signature_is_the_hex_hmac_sha256_of_the_body() -> None:
    body = b'{"verdict":"go"}'
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert signature(SECRET, body) == f"sha256={expected}"


def test_idempotency_key_names_one_verdict_change() -> None:
    first = make_verdict().to_dict()
    assert idempotency_key(first) == idempotency_key(make_verdict().to_dict())
    assert idempotency_key(first) != idempotency_key(make_verdict("go").to_dict())
    assert idempotency_key(first) != idempotency_key(make_verdict(evaluated_at="2026-11-23T10:06:00.000Z").to_dict())
    assert len(idempotency_key(first)) == 64


def test_url_host_leaves_out_path_query_and_credentials() -> None:
    assert url_host("https://hooks.example/services/T0/B0/XXXX?x=1") == "hooks.example"
    assert url_host("http://user:pw@127.0.0.1:9000/a") == "127.0.0.1:9000"


def after_attempt(number: int, attempt: Attempt) -> RetryCallState:
    """The state tenacity hands a wait strategy after the given attempt gave the given answer."""
    state = RetryCallState(Retrying(), None, (), {})
    state.attempt_number = number
    state.set_result(attempt)
    return state


def test_retry_wait_is_full_jitter_under_a_doubling_cap() -> None:
    wait = retry_wait(0.5, 30.0)
    for number in range(1, 12):
        ceiling = min(30.0, 0.5 * 2 ** (number - 1))
        delays = [wait(after_attempt(number, Attempt(False, True, 503))) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # jitter spans the whole range, not a sliver of it


def test_retry_wait_honours_retry_after_up_to_the_cap() -> None:
    wait = retry_wait(0.5, 30.0)
    asked = wait(after_attempt(1, Attempt(False, True, 429, retry_after_s=2.0)))
    assert asked == 2.0  # longer than the back-off's ceiling (0.5 s): the receiver's wait wins
    assert wait(after_attempt(1, Attempt(False, True, 429, retry_after_s=600.0))) == 30.0
    assert wait(after_attempt(1, Attempt(False, True, 429, retry_after_s=0.0))) <= 0.5  # shorter: back-off


def test_classify_reads_retry_after_in_seconds_or_as_an_http_date_on_retryable_answers_only() -> None:
    assert classify(httpx.Response(429, headers={"Retry-After": "3"})) == Attempt(False, True, 429, retry_after_s=3.0)
    asked = classify(httpx.Response(503, headers={"Retry-After": "Fri, 01 Jan 2100 00:00:00 GMT"})).retry_after_s
    assert asked is not None and asked > 365 * 24 * 3600  # capped by the wait, not here
    assert classify(httpx.Response(503)) == Attempt(False, True, 503)
    assert classify(httpx.Response(400, headers={"Retry-After": "3"})) == Attempt(False, False, 400)
    assert classify(httpx.Response(204)).delivered


def test_slack_message_asks_the_question_with_the_figures_side_by_side() -> None:
    message = slack_message(make_verdict().to_dict())
    assert "deploy v42?" in message["text"] and "NO-GO" in message["text"]
    assert message["blocks"][0]["text"] == {"type": "plain_text", "text": "doc-classifier: deploy v42?"}
    table = figures_table(make_verdict().to_dict())
    header, predictions, *rest = table.splitlines()
    assert header.split() == ["new", "v42", "baseline", "v41", "current", "limit", "status"]
    assert predictions.split() == ["predictions", "5,034", "5,120"]
    assert "JS distance to live" in table and "0.412" in table and "0.050" in table
    assert any("largest class share" in row and "95%" in row and "80%" in row and "FAIL" in row for row in rest)
    assert any("disagreement rate" in row and "31%" in row and "warn" in row for row in rest)
    everything = orjson.dumps(message).decode()
    assert table.replace("\n", "\\n") in everything
    assert "canary collapsed onto 'invoice'" in everything


def test_slack_message_for_a_go_and_a_pending_verdict() -> None:
    go = slack_message(make_verdict("go").to_dict())
    assert "GO" in go["text"] and "deploy v42?" in go["text"]
    pending = Verdict("doc-classifier", "pending", ["no canary predictions yet"], [], {}, None, None, None)
    message = slack_message(pending.to_dict())
    assert "deploy the canary?" in message["text"] and "PENDING" in message["text"]


def test_config_defaults_serve_and_a_bad_url_is_refused_by_key() -> None:
    raw: dict[str, Any] = {"deployments": [{"name": "d"}], "webhooks": [{"url": "https://ci.example/hook"}]}
    webhook = parse_config(raw, {}).webhooks[0]
    assert (webhook.format, webhook.max_attempts, webhook.queue_size) == ("json", 6, 1000)
    with pytest.raises(ConfigError, match=r"webhooks\[0\]\.url"):
        parse_config({**raw, "webhooks": [{"url": "ci.example/hook"}]}, {})
    with pytest.raises(ConfigError, match=r"webhooks\[0\]\.format"):
        parse_config({**raw, "webhooks": [{"url": "https://x.example", "format": "teams"}]}, {})


def test_retry_after_and_redirects_through_an_in_memory_transport() -> None:
    answers = {"/slow": deque([httpx.Response(429, headers={"Retry-After": "0.2"}), httpx.Response(204)]),
               "/moved": deque([httpx.Response(302, headers={"Location": "https://elsewhere.example/"})])}
    seen: list[tuple[str, float]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, time.monotonic()))
        return answers[request.url.path].popleft()

    dispatcher = WebhookDispatcher(
        [hook("http://in-memory.example/slow", backoff_s=0.001, max_backoff_s=1.0), hook("http://in-memory.example/moved")],
        ["doc-classifier"], transport=httpx.MockTransport(answer),
    )
    dispatcher.notify(make_verdict())
    dispatcher.stop(5.0)
    slow = [t for path, t in seen if path == "/slow"]
    assert len(slow) == 2 and slow[1] - slow[0] >= 0.19  # waited as long as the receiver asked
    assert [path for path, _ in seen].count("/moved") == 1  # a redirect is an answer, not retried
    counts = dispatcher.counts()
    host = "in-memory.example"
    assert counts[DeliveryKey("doc-classifier", host, "delivered")] == 1
    assert counts[DeliveryKey("doc-classifier", host, "failed")] == 1
    assert counts[DeliveryKey("doc-classifier", host, "retries")] == 1

