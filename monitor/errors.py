"""The one exception tree of driftgate.

    DriftgateError
    ├── ConfigError      a configuration key is missing, unknown or of the wrong type
    └── EventError       an input message cannot be used; ``reason`` is its dead-letter label

Third-party errors are translated into these at the adapter that meets them.
"""

from __future__ import annotations


class DriftgateError(Exception):
    """Base of every error driftgate raises on purpose."""


class ConfigError(DriftgateError):
    """A configuration is refused; ``key`` is the dotted path of the offending key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key
        self.message = message


class EventError(DriftgateError):
    """An input event is unusable; ``reason`` is a short label, ``detail`` says what was wrong."""

    __slots__ = ("detail", "reason")

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class UnknownDeploymentError(DriftgateError):
    """An API request names a deployment that is not configured."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown deployment {name!r}")
        self.name = name
