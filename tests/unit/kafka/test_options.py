"""Tests of monitor.kafka.options: librdkafka option names in kafka-python's words, and the keys driftgate owns."""

from __future__ import annotations

import kafka
import pytest

from monitor.errors import ConfigError
from monitor.kafka.options import KAFKA_PYTHON_OPTIONS, kafka_python_options, refuse_owned_options


def test_kafka_python_options_are_translated_per_role() -> None:
    options = {"security.protocol": "sasl_ssl", "sasl.mechanism": "scram-sha-512", "sasl.username": "u",
               "sasl.password": "p", "session.timeout.ms": "45000", "acks": "all",
               "ssl.endpoint.identification.algorithm": "none"}
    common = {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "u",
              "sasl_plain_password": "p", "ssl_check_hostname": False}
    assert kafka_python_options(options, "consumer") == {**common, "session_timeout_ms": 45000}
    assert kafka_python_options(options, "producer") == {**common, "acks": -1}


def test_kafka_python_refuses_an_unknown_option_by_name_only() -> None:
    with pytest.raises(ConfigError, match=r"kafka\.options\.sasl\.oauthbearer\.config") as caught:
        kafka_python_options({"sasl.oauthbearer.config": "secret-token-value"}, "consumer")
    assert "secret-token-value" not in str(caught.value)


def test_every_translated_option_is_a_kafka_python_keyword() -> None:
    accepted = {"consumer": kafka.KafkaConsumer.DEFAULT_CONFIG, "producer": kafka.KafkaProducer.DEFAULT_CONFIG}
    for name, (keyword, _, roles) in KAFKA_PYTHON_OPTIONS.items():
        for role in roles:
            assert keyword in accepted[role], f"{name} -> {keyword} is not a {role} keyword"


@pytest.mark.parametrize("name", ["bootstrap.servers", "group.id", "enable.auto.commit"])
def test_the_keys_driftgate_sets_itself_are_refused_by_name(name: str) -> None:
    with pytest.raises(ConfigError, match=rf"kafka\.options\.{name.replace('.', '[.]')}"):
        refuse_owned_options({name: "x", "client.id": "mine"})
    refuse_owned_options({"client.id": "mine"})
