"""Tests of monitor.kafka.connect: which client's source open_source builds, and the options it refuses.

No broker is started: a source is built without one (nothing listens on the port it is given).
"""

from __future__ import annotations

from typing import Any

import pytest

from monitor.config import KafkaSettings
from monitor.embedded.loopback import free_port
from monitor.errors import ConfigError
from monitor.kafka.confluent_source import ConfluentSource
from monitor.kafka.connect import open_source
from monitor.kafka.kafka_python_source import KafkaPythonSource


def _settings(bootstrap: str, client: str, **overrides: Any) -> KafkaSettings:
    values: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "client": client,
        "partition_assignment": "static",
        "start_from": "earliest",
        "group_id": "g-connect",
        **overrides,
    }
    return KafkaSettings(**values)


def test_open_source_chooses_the_client_and_refuses_owned_options() -> None:
    bootstrap = f"127.0.0.1:{free_port()}"
    confluent = open_source(_settings(bootstrap, "confluent"), ["t"])
    confluent.close()
    assert isinstance(confluent, ConfluentSource)
    kafka_python = open_source(_settings(bootstrap, "kafka-python"), ["t"])
    kafka_python.close()
    assert isinstance(kafka_python, KafkaPythonSource)
    with pytest.raises(ConfigError, match=r"kafka\.options\.enable\.auto\.commit"):
        open_source(_settings(bootstrap, "confluent", options={"enable.auto.commit": True}), ["t"])
    with pytest.raises(ConfigError, match=r"kafka\.options: .*no\.such\.property"):
        open_source(_settings(bootstrap, "confluent", options={"no.such.property": 1}), ["t"])
