"""Kafka client options: the keys driftgate sets itself, and librdkafka's names in kafka-python's words.

One ``kafka.options`` map (librdkafka's dotted names) serves both clients and both
roles; for kafka-python each is translated, or refused by name when it has no
equivalent. kafka-python connects as its client is built, so its users first ask
:func:`unreachable`.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from typing import Any, Literal

from monitor.errors import ConfigError

# Keys the settings own: taking them from ``options`` too would make two sources of truth,
# and auto-commit would break the at-least-once promise.
OWNED_OPTIONS = frozenset(
    {"bootstrap.servers", "group.id", "auto.offset.reset", "enable.auto.commit", "enable.auto.offset.store"}
)

Role = Literal["consumer", "producer"]


def _flag(value: str | int | float | bool) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() in ("true", "1", "yes")


def _upper(value: str | int | float | bool) -> str:
    return str(value).upper()


def _hostname_check(value: str | int | float | bool) -> bool:
    return str(value).strip().lower() == "https"


def _acks(value: str | int | float | bool) -> int | str:
    text = str(value).strip().lower()
    return -1 if text == "all" else int(text)


# librdkafka (dotted) name -> (kafka-python keyword, conversion, roles it applies to).
KAFKA_PYTHON_OPTIONS: Mapping[str, tuple[str, Callable[[Any], Any], tuple[Role, ...]]] = {
    "security.protocol": ("security_protocol", _upper, ("consumer", "producer")),
    "sasl.mechanism": ("sasl_mechanism", _upper, ("consumer", "producer")),
    "sasl.mechanisms": ("sasl_mechanism", _upper, ("consumer", "producer")),
    "sasl.username": ("sasl_plain_username", str, ("consumer", "producer")),
    "sasl.password": ("sasl_plain_password", str, ("consumer", "producer")),
    "sasl.kerberos.service.name": ("sasl_kerberos_service_name", str, ("consumer", "producer")),
    "ssl.ca.location": ("ssl_cafile", str, ("consumer", "producer")),
    "ssl.certificate.location": ("ssl_certfile", str, ("consumer", "producer")),
    "ssl.key.location": ("ssl_keyfile", str, ("consumer", "producer")),
    "ssl.key.password": ("ssl_password", str, ("consumer", "producer")),
    "ssl.crl.location": ("ssl_crlfile", str, ("consumer", "producer")),
    "ssl.cipher.suites": ("ssl_ciphers", str, ("consumer", "producer")),
    "ssl.endpoint.identification.algorithm": ("ssl_check_hostname", _hostname_check, ("consumer", "producer")),
    "client.id": ("client_id", str, ("consumer", "producer")),
    "request.timeout.ms": ("request_timeout_ms", int, ("consumer", "producer")),
    "metadata.max.age.ms": ("metadata_max_age_ms", int, ("consumer", "producer")),
    "reconnect.backoff.ms": ("reconnect_backoff_ms", int, ("consumer", "producer")),
    "reconnect.backoff.max.ms": ("reconnect_backoff_max_ms", int, ("consumer", "producer")),
    "connections.max.idle.ms": ("connections_max_idle_ms", int, ("consumer", "producer")),
    "session.timeout.ms": ("session_timeout_ms", int, ("consumer",)),
    "heartbeat.interval.ms": ("heartbeat_interval_ms", int, ("consumer",)),
    "max.poll.interval.ms": ("max_poll_interval_ms", int, ("consumer",)),
    "fetch.min.bytes": ("fetch_min_bytes", int, ("consumer",)),
    "fetch.max.bytes": ("fetch_max_bytes", int, ("consumer",)),
    "fetch.wait.max.ms": ("fetch_max_wait_ms", int, ("consumer",)),
    "max.partition.fetch.bytes": ("max_partition_fetch_bytes", int, ("consumer",)),
    "isolation.level": ("isolation_level", str, ("consumer",)),
    "group.instance.id": ("group_instance_id", str, ("consumer",)),
    "acks": ("acks", _acks, ("producer",)),
    "linger.ms": ("linger_ms", int, ("producer",)),
    "compression.type": ("compression_type", str, ("producer",)),
    "message.max.bytes": ("max_request_size", int, ("producer",)),
    "enable.idempotence": ("enable_idempotence", _flag, ("producer",)),
}


def kafka_python_options(options: Mapping[str, str | int | float | bool], role: Role) -> dict[str, Any]:
    """Translate librdkafka-style ``options`` into kafka-python keywords for a consumer or producer.

    Options of the other role are skipped (one ``options`` map serves both); an option
    kafka-python has no equivalent for raises ConfigError naming it (never its value).
    """
    refuse_owned_options(options)
    translated: dict[str, Any] = {}
    for name, value in options.items():
        entry = KAFKA_PYTHON_OPTIONS.get(name)
        if entry is None:
            raise ConfigError(
                f"kafka.options.{name}",
                "not supported with client kafka-python; supported: " + ", ".join(sorted(KAFKA_PYTHON_OPTIONS)),
            )
        keyword, convert, roles = entry
        if role not in roles:
            continue
        try:
            translated[keyword] = convert(value)
        except ValueError:
            raise ConfigError(f"kafka.options.{name}", "has a value of the wrong kind") from None
    return translated


def refuse_owned_options(options: Mapping[str, object]) -> None:
    owned = sorted(OWNED_OPTIONS.intersection(options))
    if owned:
        raise ConfigError(
            f"kafka.options.{owned[0]}",
            "is set by driftgate from the kafka section (bootstrap_servers, group_id, start_from); "
            "auto-commit stays off",
        )


def unreachable(bootstrap_servers: str, timeout_s: float = 1.0) -> str | None:
    """None if a TCP connection to one of the bootstrap servers opens, else a sentence saying why not."""
    problems = []
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        host = host.strip("[]")
        try:
            with socket.create_connection((host, int(port)), timeout=timeout_s):
                return None
        except (OSError, ValueError) as error:
            problems.append(f"{server.strip()}: {getattr(error, 'strerror', None) or error}")
    return "cannot connect to the Kafka bootstrap servers: " + "; ".join(problems)
