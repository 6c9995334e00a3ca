"""Opening the configured Kafka client's source: both build on :mod:`monitor.kafka.source`."""

from __future__ import annotations

from monitor.config import KafkaSettings
from monitor.kafka.source import Source


def open_source(settings: KafkaSettings, topics: list[str]) -> Source:
    """Return the source for ``settings.client`` reading ``topics``; no broker needs to be up yet."""
    # Imported here: only the chosen client is loaded.
    if settings.client == "kafka-python":
        from monitor.kafka.kafka_python_source import KafkaPythonSource

        return KafkaPythonSource(settings, topics)
    from monitor.kafka.confluent_source import ConfluentSource

    return ConfluentSource(settings, topics)
