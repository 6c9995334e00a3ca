"""Topic admin without a broker (its errors name the topic), and the rate limiter of the clients' log lines."""

from __future__ import annotations

import logging

import pytest

from monitor.embedded.loopback import free_port
from monitor.errors import DriftgateError
from monitor.kafka.topics import LIBRDKAFKA_LOGGER, RateLimiter, ensure_topics, librdkafka_logger, topic_partitions


def test_no_broker_is_an_error_naming_the_topic() -> None:
    bootstrap = f"127.0.0.1:{free_port()}"
    with pytest.raises(DriftgateError, match=r"predictions\.live"):
        ensure_topics(bootstrap, ["predictions.live"], timeout_s=1)
    with pytest.raises(DriftgateError, match=r"predictions\.live"):
        topic_partitions(bootstrap, "predictions.live", timeout_s=1)


def test_no_topics_asked_for_needs_no_broker() -> None:
    assert ensure_topics(f"127.0.0.1:{free_port()}", [], timeout_s=1) == []


def test_rate_limiter_lets_one_line_per_key_and_interval_through() -> None:
    now = [0.0]
    limiter = RateLimiter(interval_s=10, clock=lambda: now[0])
    assert limiter.allow("down") == 0
    assert limiter.allow("down") is None
    assert limiter.allow("other") == 0
    now[0] = 5
    assert limiter.allow("down") is None
    now[0] = 10
    assert limiter.allow("down") == 2  # the two held back since the last line


def test_librdkafka_lines_are_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    logger = librdkafka_logger()
    assert librdkafka_logger().filters == logger.filters  # the filter is attached once
    with caplog.at_level(logging.INFO, logger=LIBRDKAFKA_LOGGER):
        for attempt in range(5):
            logger.error("%s [%s] %s", "FAIL", "rdkafka#consumer-test", f"Connect failed (attempt {attempt})")
        logger.error("%s [%s] %s", "OTHER", "rdkafka#consumer-test", "a different facility")
    lines = [record.getMessage() for record in caplog.records if record.name == LIBRDKAFKA_LOGGER]
    assert lines == [
        "FAIL [rdkafka#consumer-test] Connect failed (attempt 0)",
        "OTHER [rdkafka#consumer-test] a different facility",
    ]
