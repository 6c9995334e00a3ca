"""Tests of monitor.sinks.retry: which answers are retried, what a Retry-After asks, and the wait chosen."""

from __future__ import annotations

import httpx
import pytest
from elastic_transport import HttpHeaders
from tenacity import RetryCallState, Retrying

from monitor.sinks.retry import backoff_wait, honour_retry_after, retry_after_s, retryable

NOW = 1_796_230_800.0  # Wed, 02 Dec 2026 17:00:00 GMT


@pytest.mark.parametrize(("status", "again"), [(429, True), (500, True), (502, True), (503, True), (504, True),
                                                (400, False), (401, False), (403, False), (404, False),
                                                (409, False), (413, False)])
def test_429_and_5xx_are_retried_and_any_other_4xx_is_final(status: int, again: bool) -> None:
    assert retryable(status) is again


@pytest.mark.parametrize(("value", "asked"), [
    ("7", 7.0),
    ("0", 0.0),
    ("0.25", 0.25),
    (" 12 ", 12.0),
    ("Wed, 02 Dec 2026 17:01:30 GMT", 90.0),  # an HTTP-date: the seconds until then
    ("Wed, 02 Dec 2026 17:01:30 -0000", 90.0),
    ("Wed, 02 Dec 2026 16:59:00 GMT", 0.0),  # a date already past: no wait asked
    ("-3", None),
    ("nan", None),
    ("inf", None),
    ("later", None),
    ("", None),
])
def test_retry_after_is_seconds_or_an_http_date(value: str, asked: float | None) -> None:
    assert retry_after_s({"Retry-After": value}, now=NOW) == asked


def test_retry_after_is_read_from_either_client_s_headers_whatever_the_case() -> None:
    assert retry_after_s(httpx.Headers({"retry-after": "5"})) == 5.0
    assert retry_after_s(HttpHeaders({"RETRY-AFTER": "5"})) == 5.0
    assert retry_after_s(HttpHeaders()) is None
    assert retry_after_s(None) is None


def test_an_http_date_is_measured_from_the_clock_when_no_time_is_given() -> None:
    asked = retry_after_s({"Retry-After": "Fri, 01 Jan 2100 00:00:00 GMT"})
    assert asked is not None and asked > 365 * 24 * 3600


def test_a_longer_retry_after_wins_up_to_the_cap_and_a_shorter_one_leaves_the_back_off() -> None:
    assert honour_retry_after(0.4, None, 30.0) == 0.4
    assert honour_retry_after(0.4, 2.0, 30.0) == 2.0
    assert honour_retry_after(0.4, 600.0, 30.0) == 30.0
    assert honour_retry_after(0.4, 0.1, 30.0) == 0.4


def state_after(attempt: int) -> RetryCallState:
    state = RetryCallState(Retrying(), None, (), {})
    state.attempt_number = attempt
    return state


def test_backoff_wait_is_full_jitter_unless_the_answer_asked_for_longer() -> None:
    asked: list[float | None] = [None]
    wait = backoff_wait(0.5, 30.0, lambda _state: asked[0])
    for attempt in range(1, 10):
        ceiling = min(30.0, 0.5 * 2 ** (attempt - 1))
        delays = [wait(state_after(attempt)) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays) and max(delays) > ceiling * 0.8
    asked[0] = 5.0
    assert wait(state_after(1)) == 5.0
    asked[0] = 300.0
    assert wait(state_after(1)) == 30.0
