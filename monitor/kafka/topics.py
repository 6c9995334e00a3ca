"""Topic administration, and the few pieces every Kafka client of driftgate shares.

``ensure_topics`` and ``topic_partitions`` use confluent-kafka's AdminClient whatever
client the sidecar consumes with: it is a required dependency and its calls take
timeouts. The shared pieces: routing librdkafka's log lines through ``logging``
without flooding it, and a rate limiter for repeated error lines.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from monitor.errors import DriftgateError

log = logging.getLogger(__name__)

LIBRDKAFKA_LOGGER = "monitor.librdkafka"

ClientOptions = Mapping[str, str | int | float | bool]


def ensure_topics(
    bootstrap: str,
    topics: list[str],
    partitions: int = 1,
    options: ClientOptions | None = None,
    timeout_s: float = 10,
) -> list[str]:
    """Create the topics that do not exist yet; return the names this call created.

    A topic that already exists (or that another process creates meanwhile) is left as
    it is, whatever its partition count. Any other failure raises DriftgateError naming
    the topic.
    """
    wanted = list(dict.fromkeys(topics))
    if not wanted:
        return []
    admin = admin_client(bootstrap, options)
    existing = _existing_topics(admin, bootstrap, wanted, timeout_s)
    missing = [name for name in wanted if name not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions) for name in missing],
        operation_timeout=timeout_s,
        request_timeout=timeout_s,
    )
    created: list[str] = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as error:
            if kafka_error_code(error) == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise DriftgateError(
                f"cannot create Kafka topic {name!r} at {bootstrap}: {kafka_error_text(error)}"
            ) from None
        except Exception as error:  # a future that timed out raises concurrent.futures' own error
            raise DriftgateError(f"cannot create Kafka topic {name!r} at {bootstrap}: {error!r}") from None
        created.append(name)
    if created:
        log.info("created Kafka topics", extra={"topics": created, "partitions": partitions})
    return created


def topic_partitions(
    bootstrap: str,
    topic: str,
    options: ClientOptions | None = None,
    timeout_s: float = 10,
) -> list[int]:
    """Return the sorted partition ids of ``topic``; DriftgateError if it does not exist or the broker cannot say."""
    admin = admin_client(bootstrap, options)
    try:
        # All topics, not just this one: a metadata request naming a topic may create it.
        metadata = admin.list_topics(timeout=timeout_s).topics.get(topic)
    except KafkaException as error:
        raise DriftgateError(
            f"cannot read the partitions of Kafka topic {topic!r}: {kafka_error_text(error)}"
        ) from None
    if metadata is None:
        raise DriftgateError(f"Kafka topic {topic!r} does not exist at {bootstrap}")
    if metadata.error is not None:
        raise DriftgateError(f"cannot read the partitions of Kafka topic {topic!r}: {metadata.error.str()}")
    return sorted(metadata.partitions)


def admin_client(bootstrap: str, options: ClientOptions | None = None) -> AdminClient:
    """An AdminClient for ``bootstrap`` with the pass-through client ``options`` (security and the like)."""
    config: dict[str, Any] = {"bootstrap.servers": bootstrap, **(options or {})}
    # Looking a topic up must never create it (librdkafka allows that by default outside consumers).
    config["allow.auto.create.topics"] = False
    config["logger"] = librdkafka_logger()
    return AdminClient(config)


def _existing_topics(admin: AdminClient, bootstrap: str, wanted: list[str], timeout_s: float) -> set[str]:
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as error:
        raise DriftgateError(
            f"cannot create Kafka topics {', '.join(wanted)}: the broker at {bootstrap} "
            f"did not answer: {kafka_error_text(error)}"
        ) from None
    return {name for name, topic in metadata.topics.items() if topic.error is None}


def kafka_error_code(error: KafkaException) -> int | None:
    """The librdkafka error code inside a KafkaException, if it carries one."""
    detail = error.args[0] if error.args else None
    return detail.code() if isinstance(detail, KafkaError) else None


def kafka_error_text(error: KafkaException) -> str:
    """The sentence inside a KafkaException (without the KafkaError{...} wrapping)."""
    detail = error.args[0] if error.args else None
    return detail.str() if isinstance(detail, KafkaError) else str(error)


class RateLimiter:
    """Lets one line per key through per interval and counts the ones it holds back.

    A broker that is down makes every client report the same error many times a
    second; one line per interval says as much.
    """

    def __init__(self, interval_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._last: dict[Hashable, float] = {}
        self._held: dict[Hashable, int] = {}

    def allow(self, key: Hashable) -> int | None:
        """Return how many lines of ``key`` were held back since the last one let through, or None to hold this one."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._held.pop(key, 0)


class _RateLimitFilter(logging.Filter):
    """Holds back repeats of a librdkafka facility (e.g. FAIL) at one level within the interval."""

    def __init__(self, limiter: RateLimiter) -> None:
        super().__init__()
        self._limiter = limiter

    def filter(self, record: logging.LogRecord) -> bool:
        # confluent-kafka logs with the format "%s [%s] %s" and args (facility, client name, text).
        args = record.args if isinstance(record.args, tuple) else ()
        key = (record.levelno, *args[:2]) if len(args) >= 2 else (record.levelno, record.msg)
        held = self._limiter.allow(key)
        if held is None:
            return False
        if held:
            record.msg = f"{record.msg} ({held} similar lines held back)"
        return True


def librdkafka_logger() -> logging.Logger:
    """The logger that confluent-kafka clients get as their ``logger``: librdkafka's lines, rate-limited."""
    logger = logging.getLogger(LIBRDKAFKA_LOGGER)
    if not any(isinstance(existing, _RateLimitFilter) for existing in logger.filters):
        logger.addFilter(_RateLimitFilter(RateLimiter(interval_s=10.0)))
    return logger
