"""The one exception tree of driftgate: every error it raises on purpose is one of these.

    DriftgateError
    ├── ConfigError             a configuration key is missing, unknown or of the wrong type (names the key)
    ├── EventError              an input message cannot be used; ``reason`` is its dead-letter label
    ├── RequestError            an API request cannot be answered as asked (HTTP 4xx)
    │   ├── UnknownDeploymentError   it names a deployment that is not configured (404)
    │   └── LabelError               a reviewer's label is not a class of the deployment (422)
    ├── NotReadyError           the service cannot do it yet, e.g. its Kafka producer is starting (503)
    ├── ReportError             a report or profile cannot be made from what is held yet (409)
    ├── ProfileError            a reference profile file cannot be read or is not one
    ├── ReferenceFileError      a reference data file cannot be read or lacks what a profile needs
    ├── CheckpointError         a checkpoint cannot be read or does not belong to this config
    ├── PushError               a dashboard cannot be pushed to Grafana or Kibana; ``kind`` says how
    └── GateError               the CI gate cannot read a verdict from the service's answer

Third-party errors are translated into these at the adapter that meets them; the HTTP
API maps only this tree to status codes (:data:`HTTP_STATUS`), anything else is a 500.
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


class RequestError(DriftgateError):
    """An API request that cannot be answered as asked; the message says why."""


class UnknownDeploymentError(RequestError):
    """An API request names a deployment that is not configured."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown deployment {name!r}")
        self.name = name


class LabelError(RequestError):
    """A reviewer's label that is not a class of the deployment."""


class NotReadyError(DriftgateError):
    """The service cannot do this yet (its Kafka producer is starting); try again."""


class ReportError(DriftgateError):
    """A report or profile cannot be made (too little data); the message says what is missing."""


class ProfileError(DriftgateError):
    """A profile file that cannot be read or is not a profile; the message says why."""


class ReferenceFileError(DriftgateError):
    """A reference data file that cannot be read, or lacks what a profile needs; the message says which."""


class CheckpointError(DriftgateError):
    """A checkpoint that cannot be read, or belongs to another config; the message says why."""


class PushError(DriftgateError):
    """A dashboard push refused or unreachable; the message says which and why.

    ``kind`` is ``"unreachable"`` (no answer came back), ``"refused"`` (the server answered, and not
    with success) or ``"bad_input"`` (nothing valid to push); the CLI's exit code follows it.
    """

    def __init__(self, message: str, kind: str = "bad_input") -> None:
        super().__init__(message)
        self.kind = kind


class GateError(DriftgateError):
    """The service answered the CI gate with something other than a verdict; the message says what."""


# The API's status code for each error a request can meet (the most specific class wins).
HTTP_STATUS: dict[type[DriftgateError], int] = {
    UnknownDeploymentError: 404,
    LabelError: 422,
    RequestError: 400,
    ReportError: 409,  # too little held yet: the request is fine, the state is not (docs/contract.md §3)
    NotReadyError: 503,
}


def http_status(error: DriftgateError) -> int:
    """The HTTP status for an error of the tree: that of its nearest class in HTTP_STATUS, else 500."""
    for cls in type(error).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500
