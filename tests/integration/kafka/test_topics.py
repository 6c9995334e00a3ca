"""Topic creation and partition lookup on the real broker; the log rate limiter on its own."""

from __future__ import annotations

import logging

import pytest

from monitor.embedded.broker import EmbeddedBroker
from monitor.embedded.loopback import free_port
from monitor.errors import DriftgateError
from monitor.kafka.topics import LIBRDKAFKA_LOGGER, RateLimiter, ensure_topics, librdkafka_logger, topic_partitions


@pytest.mark.integration
def test_creates_only_missing_topics(broker: EmbeddedBroker, topic_name: str) -> None:
    first, second = f"{topic_name}-a", f"{topic_name}-b"
    assert ensure_topics(broker.bootstrap, [first]) == [first]
    assert ensure_topics(broker.bootstrap, [first, second, second]) == [second]
    assert ensure_topics(broker.bootstrap, [first, second]) == []
    assert topic_partitions(broker.bootstrap, first) == [0]


@pytest.mark.integration
def test_creates_topics_with_the_partitions_asked_for(broker: EmbeddedBroker, topic_name: str) -> None:
    assert ensure_topics(broker.bootstrap, [topic_name], partitions=3) == [topic_name]
    assert topic_partitions(broker.bootstrap, topic_name) == [0, 1, 2]
    # An existing topic is left as it is, whatever partition count is asked for now.
    assert ensure_topics(broker.bootstrap, [topic_name], partitions=5) == []
    assert topic_partitions(broker.bootstrap, topic_name) == [0, 1, 2]


@pytest.mark.integration
def test_unknown_topic_has_no_partitions(broker: EmbeddedBroker, topic_name: str) -> None:
    with pytest.raises(DriftgateError, match=topic_name):
        topic_partitions(broker.bootstrap, topic_name, timeout_s=5)


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
