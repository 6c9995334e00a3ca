"""Writing to Kafka: dead letters, verdict changes and spot-check requests.

``send`` never blocks on the broker and never raises for a delivery failure: failures
are counted in ``failed`` and logged (rate-limited); ``flush`` waits for what is in
flight and says how much is still undelivered.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, cast

import kafka
import kafka.errors
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from monitor.config import KafkaSettings
from monitor.core.records import DeadLetter
from monitor.errors import ConfigError
from monitor.kafka.options import kafka_python_options, unreachable
from monitor.kafka.topics import RateLimiter, kafka_error_text, librdkafka_logger

log = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]
WireHeaders = list[tuple[str, str | bytes | None]] | None  # what confluent-kafka's stubs ask for


class KafkaSink:
    """A producer on confluent-kafka or kafka-python (per ``settings.client``) with delivery counters."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self.delivered = 0
        self.failed = 0
        self._sent = 0
        self._lock = threading.Lock()  # kafka-python reports deliveries from its own thread
        self._limiter = RateLimiter()
        self._producer: _ConfluentProducer | _KafkaPythonProducer
        if settings.client == "kafka-python":
            self._producer = _KafkaPythonProducer(settings, self._on_delivery)
        else:
            self._producer = _ConfluentProducer(settings, self._on_delivery)

    @property
    def in_flight(self) -> int:
        """Messages handed to the client whose delivery has not been reported yet."""
        with self._lock:
            return self._sent - self.delivered - self.failed

    def send(self, topic: str, key: bytes | None, value: bytes, headers: Headers | None = None) -> None:
        """Queue one message; a refusal or a later delivery failure is counted in ``failed``."""
        with self._lock:
            self._sent += 1
        problem = self._producer.produce(topic, key, value, headers)
        if problem is not None:
            self._on_delivery(problem)

    def dead_letter(self, letter: DeadLetter, topic: str) -> None:
        """Publish a dead letter: the original key and bytes, with its origin and reason as headers.

        The bytes go out whole, even over ``max_message_bytes`` (that limit is what the
        sidecar decodes, not what the broker carries); should the broker refuse them, the
        failure is counted like any other and the origin headers are in the log.
        """
        record = letter.record
        value = record.value if record.value is not None else b""
        self.send(topic, record.key, value, letter.headers())

    def flush(self, timeout_s: float = 10) -> int:
        """Wait up to ``timeout_s`` for the messages in flight; return how many are still undelivered."""
        self._producer.flush(timeout_s)
        return self.in_flight

    def close(self, timeout_s: float = 10) -> None:
        """Deliver what is in flight (up to ``timeout_s``) and close the client."""
        left = self.flush(timeout_s)
        if left:
            log.warning("Kafka producer closed with messages undelivered", extra={"undelivered": left})
        self._producer.close()

    def _on_delivery(self, problem: str | None) -> None:
        with self._lock:
            if problem is None:
                self.delivered += 1
                return
            self.failed += 1
        held = self._limiter.allow(problem[:60])
        if held is not None:
            log.warning("Kafka delivery failed: %s", problem, extra={"held_back": held, "failed": self.failed})


# Told None when a message was delivered, else a sentence saying why it was not.
DeliveryReport = Callable[[str | None], None]


class _ConfluentProducer:
    def __init__(self, settings: KafkaSettings, report: DeliveryReport) -> None:
        self._report = report
        self._limiter = RateLimiter()
        config: dict[str, Any] = {
            **settings.options,
            "bootstrap.servers": settings.bootstrap_servers,
            "error_cb": self._on_client_error,
            "logger": librdkafka_logger(),
        }
        # The consumer's keys are meaningless here; librdkafka would only warn about them.
        for key in ("group.id", "auto.offset.reset", "enable.auto.commit", "enable.auto.offset.store"):
            config.pop(key, None)
        try:
            self._producer = Producer(config)
        except KafkaException as error:
            raise ConfigError("kafka.options", kafka_error_text(error)) from None

    def produce(self, topic: str, key: bytes | None, value: bytes, headers: Headers | None) -> str | None:
        wire_headers = cast(WireHeaders, headers)
        for attempt in (1, 2):
            try:
                self._producer.produce(topic, value, key, headers=wire_headers, on_delivery=self._on_delivery)
            except BufferError:
                if attempt == 2:
                    return "the producer queue is full"
                self._producer.poll(0)  # serve delivery reports, which frees queue space
                continue
            except KafkaException as error:
                return kafka_error_text(error)
            break
        self._producer.poll(0)  # serve delivery reports of earlier messages; does not wait
        return None

    def flush(self, timeout_s: float) -> None:
        self._producer.flush(timeout_s)

    def close(self) -> None:
        self._producer.flush(0)

    def _on_delivery(self, error: KafkaError | None, message: Message[Any, Any]) -> None:
        self._report(None if error is None else f"{message.topic()}: {error.str()}")

    def _on_client_error(self, error: KafkaError) -> None:
        if self._limiter.allow(error.code()) is not None:
            log.warning("Kafka producer problem: %s", error.str())


class _KafkaPythonProducer:
    """kafka-python connects when its producer is built: built lazily, retried with a growing pause."""

    def __init__(self, settings: KafkaSettings, report: DeliveryReport) -> None:
        self._settings = settings
        self._report = report
        self._config: dict[str, Any] = {
            **kafka_python_options(settings.options, "producer"),
            "bootstrap_servers": settings.bootstrap_servers.split(","),
            "bootstrap_timeout_ms": 5000,
            # send() waits this long at most for the metadata of a topic it has not written to yet.
            "max_block_ms": 2000,
        }
        self._producer: Any = None
        self._retry_in_s = 1.0
        self._next_connect = 0.0
        self._connect()

    def produce(self, topic: str, key: bytes | None, value: bytes, headers: Headers | None) -> str | None:
        if self._producer is None and not self._connect():
            return "the Kafka producer is not connected"
        try:
            future = self._producer.send(topic, value=value, key=key, headers=headers or [])
        except kafka.errors.KafkaError as error:
            return f"{topic}: {type(error).__name__}: {error}"
        future.add_callback(lambda _metadata: self._report(None))
        future.add_errback(lambda error: self._report(f"{topic}: {type(error).__name__}: {error}"))
        return None

    def flush(self, timeout_s: float) -> None:
        if self._producer is None:
            return
        # A timeout is no error here: what is left shows in the caller's count.
        with contextlib.suppress(kafka.errors.KafkaTimeoutError):
            self._producer.flush(timeout=timeout_s)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=1)

    def _connect(self) -> bool:
        now = time.monotonic()
        if now < self._next_connect:
            return False
        problem = unreachable(self._settings.bootstrap_servers)
        if problem is None:
            try:
                self._producer = kafka.KafkaProducer(**self._config)
            except kafka.errors.KafkaConfigurationError as error:
                raise ConfigError("kafka.options", str(error)) from None
            except (kafka.errors.KafkaError, ValueError) as error:
                problem = f"{type(error).__name__}: {error}"
        if problem is not None:
            log.warning("Kafka producer cannot connect: %s", problem, extra={"retry_in_s": self._retry_in_s})
            self._next_connect = now + self._retry_in_s
            self._retry_in_s = min(self._retry_in_s * 2, 60.0)
            return False
        return True
