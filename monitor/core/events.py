"""Input events: decoding and validating Kafka message values per the contract.

This is the hot path: every consumed message passes through :meth:`EventDecoder.decode_prediction`
or :meth:`EventDecoder.decode_feedback` once, so the code below avoids pydantic and
per-field function calls on purpose. Any defect raises :class:`EventError`, whose
``reason`` becomes the dead-letter label.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import msgspec
import orjson

from monitor.config import class_name
from monitor.errors import EventError

# Dead-letter reasons, one label each (the `reason` label of driftgate_dead_letters_total).
TOO_LARGE = "too_large"
INVALID_UTF8 = "invalid_utf8"
NOT_JSON = "not_json"
NOT_OBJECT = "not_object"
MISSING_FIELD = "missing_field"
WRONG_TYPE = "wrong_type"
SCORE_OUT_OF_RANGE = "score_out_of_range"
BAD_TIMESTAMP = "bad_timestamp"
UNKNOWN_DEPLOYMENT = "unknown_deployment"
UNKNOWN_CLASS = "unknown_class"
TOO_MANY_CLASSES = "too_many_classes"
EMPTY_MESSAGE = "empty_message"

REASONS = (
    TOO_LARGE,
    INVALID_UTF8,
    NOT_JSON,
    NOT_OBJECT,
    MISSING_FIELD,
    WRONG_TYPE,
    SCORE_OUT_OF_RANGE,
    BAD_TIMESTAMP,
    UNKNOWN_DEPLOYMENT,
    UNKNOWN_CLASS,
    TOO_MANY_CLASSES,
    EMPTY_MESSAGE,
)

FEEDBACK_SOURCES = ("user", "spotcheck")
# Event times past this (the year 5138) are refused: a clock bug or milliseconds sent as seconds.
MAX_EPOCH_S = 1e11
_MISSING = object()


class Prediction(msgspec.Struct, gc=False):
    """One model answer for one request.

    A msgspec struct rather than a dataclass: the hot path decodes plain messages straight
    into it (:func:`plain_prediction`), with no second object built per event. It holds no
    reference cycles, so the garbage collector need not track it (``gc=False``).
    """

    request_id: str
    deployment: str
    label: str
    ts: float
    model_version: str | None = None
    scores: dict[str, float] | None = None
    features: dict[str, Any] | None = None


@dataclass(slots=True)
class Feedback:
    """The truth for one request, learned later: a true ``label`` or whether live was ``correct``."""

    request_id: str
    deployment: str
    ts: float
    label: str | None = None
    correct: bool | None = None
    source: str = "user"


Getter = Callable[[dict[str, Any]], Any]


def _path_getter(path: str) -> Getter:
    """A function reading a dotted path from a JSON object, returning _MISSING when absent."""
    parts = path.split(".")
    if len(parts) == 1:
        key = parts[0]
        return lambda obj: obj.get(key, _MISSING)

    def get(obj: dict[str, Any]) -> Any:
        node: Any = obj
        for part in parts:
            if not isinstance(node, dict):
                return _MISSING
            node = node.get(part, _MISSING)
            if node is _MISSING:
                return _MISSING
        return node

    return get


def parse_ts(value: Any, default: float) -> float:
    """Event time in epoch seconds from an RFC 3339 string or a number; ``default`` if absent."""
    if value is _MISSING or value is None:
        return default
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise EventError(BAD_TIMESTAMP, f"ts {value[:64]!r} is not an RFC 3339 time") from None
        if parsed.tzinfo is None:
            raise EventError(BAD_TIMESTAMP, f"ts {value[:64]!r} has no time zone")
        seconds = parsed.timestamp()
        if not 0 <= seconds <= MAX_EPOCH_S:
            raise EventError(BAD_TIMESTAMP, f"ts {value[:64]!r} is not a plausible event time")
        return seconds
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
        if not math.isfinite(seconds) or seconds < 0 or seconds > MAX_EPOCH_S:
            raise EventError(BAD_TIMESTAMP, f"ts {value!r} is not a plausible epoch time in seconds")
        return seconds
    raise EventError(WRONG_TYPE, f"ts must be an RFC 3339 string or epoch seconds, not {_kind(value)}")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string",
            list: "an array", dict: "an object"}.get(type(value), type(value).__name__)


def load_object(value: bytes | None, max_bytes: int) -> dict[str, Any]:
    """Parse one message value into a JSON object, or raise EventError with the reason."""
    if value is None or len(value) == 0:
        raise EventError(EMPTY_MESSAGE, "the message has no value")
    if len(value) > max_bytes:
        raise EventError(TOO_LARGE, f"{len(value)} bytes is over the limit of {max_bytes}")
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as error:
        try:
            value.decode("utf-8")
        except UnicodeDecodeError as utf8_error:
            raise EventError(INVALID_UTF8, f"not valid UTF-8 at byte {utf8_error.start}") from None
        raise EventError(NOT_JSON, f"not JSON: {str(error)[:200]}") from None
    if type(obj) is not dict:
        raise EventError(NOT_OBJECT, f"the JSON value is {_kind(obj)}, not an object")
    return obj


_NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
# The integers orjson reads as integers (past them, it reads a float, which the general path refuses).
_MIN_INTEGER, _MAX_INTEGER = -(2**63), 2**64 - 1
_Score = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
# What a plain message without "ts" decodes to; no event time in range is negative.
_NO_TS = -1.0


class _PlainPrediction(Prediction, gc=False):
    """A prediction event with the contract's own field names, checked as it is parsed.

    ``ts`` comes as epoch seconds in range, an RFC 3339 string (parsed afterwards, by the
    general path's own :func:`parse_ts`) or not at all; any other form (null, a number out of
    range) fails the decode and goes to the general path, which takes or refuses it.
    """

    request_id: _NonEmpty
    deployment: _NonEmpty
    # An int or a bool only until plain_prediction has named it: never seen outside this module.
    label: _NonEmpty | int | bool  # type: ignore[assignment]
    # A str only until plain_prediction has parsed it: never seen outside this module.
    ts: Annotated[float, msgspec.Meta(ge=0.0, le=MAX_EPOCH_S)] | str = _NO_TS  # type: ignore[assignment]
    model_version: str | None = None
    scores: dict[str, _Score] | None = None
    features: dict[str, str | int | float | bool | None] | None = None


_PLAIN_PREDICTION = msgspec.json.Decoder(_PlainPrediction)


def plain_prediction(value: bytes, received_ts: float) -> Prediction | None:
    """Parse and check a prediction in one pass, the hot path's way; None for anything but a
    valid prediction with the contract's field names, which the general path then takes (and
    names what is wrong with). Raises EventError only for a ``ts`` string that is no time.

    It accepts exactly what :func:`load_object` and :meth:`EventDecoder.prediction` accept,
    with the same fields (tests/unit/core/test_events.py checks that on generated messages).
    """
    # msgspec does not look inside the strings of fields it skips; orjson refuses bad UTF-8 anywhere.
    if not value.isascii():
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    try:
        prediction = _PLAIN_PREDICTION.decode(value)
    except msgspec.DecodeError:  # malformed JSON, a field missing or of the wrong kind, a ts not plain
        return None
    ts = prediction.ts
    if type(ts) is str:
        prediction.ts = parse_ts(ts, received_ts)
    elif ts == _NO_TS:
        prediction.ts = received_ts
    label = prediction.label
    if not isinstance(label, str):  # an int or a bool: the class of its text
        if not _MIN_INTEGER <= label <= _MAX_INTEGER:
            return None
        prediction.label = class_name(label)
    return prediction


class EventDecoder:
    """Decodes and validates the events of one deployment, with its field mapping."""

    def __init__(self, field_paths: dict[str, str] | None = None, max_bytes: int = 1_048_576) -> None:
        paths = {
            "request_id": "request_id", "deployment": "deployment", "label": "label", "ts": "ts",
            "model_version": "model_version", "scores": "scores", "features": "features",
            "correct": "correct", "source": "source",
        }
        paths.update(field_paths or {})
        self.max_bytes = max_bytes
        self._paths = paths
        # With the contract's own field names, predictions can take plain_prediction's one pass.
        self.plain_names = all(name == path for name, path in paths.items())
        self._get = {name: _path_getter(path) for name, path in paths.items()}

    def deployment_of(self, obj: dict[str, Any]) -> Any:
        """The deployment name an object carries (``None`` when absent)."""
        value = self._get["deployment"](obj)
        return None if value is _MISSING else value

    def _required_str(self, obj: dict[str, Any], name: str) -> str:
        value = self._get[name](obj)
        if type(value) is str and value:
            return value
        path = self._paths[name]
        if value is _MISSING or value is None:
            raise EventError(MISSING_FIELD, f"required field {path!r} is missing")
        if value == "":
            raise EventError(MISSING_FIELD, f"required field {path!r} is empty")
        raise EventError(WRONG_TYPE, f"{path!r} must be a string, not {_kind(value)}")

    def _optional_str(self, obj: dict[str, Any], name: str) -> str | None:
        value = self._get[name](obj)
        if value is _MISSING or value is None:
            return None
        if type(value) is not str:
            raise EventError(WRONG_TYPE, f"{self._paths[name]!r} must be a string, not {_kind(value)}")
        return value

    def _required_label(self, obj: dict[str, Any]) -> str:
        label = self._label(obj)
        if label is None:
            raise EventError(MISSING_FIELD, f"required field {self._paths['label']!r} is missing")
        return label

    def _label(self, obj: dict[str, Any]) -> str | None:
        """The class a ``label`` names (None when absent): a string as it is, an integer or a
        boolean as its text (:func:`monitor.config.class_name`); a float is refused."""
        value = self._get["label"](obj)
        if type(value) is str and value:
            return value
        path = self._paths["label"]
        if value is _MISSING or value is None:
            return None
        if value == "":
            raise EventError(MISSING_FIELD, f"{path!r} is empty")
        if type(value) is int or type(value) is bool:
            return class_name(value)
        if type(value) is float:
            raise EventError(
                WRONG_TYPE, f"{path!r} must be a string or an integer, not the number {value!r}: a class is "
                "named, not measured",
            )
        raise EventError(WRONG_TYPE, f"{path!r} must be a string or an integer, not {_kind(value)}")

    def prediction(self, obj: dict[str, Any], received_ts: float) -> Prediction:
        """Validate a parsed object as a prediction event (the general path: the hot one is
        :func:`plain_prediction`, which hands everything unusual on to this)."""
        request_id = self._required_str(obj, "request_id")
        deployment = self._required_str(obj, "deployment")
        label = self._required_label(obj)
        ts = parse_ts(self._get["ts"](obj), received_ts)
        model_version = self._optional_str(obj, "model_version")
        scores = self._get["scores"](obj)
        if scores is _MISSING or scores is None:
            scores = None
        else:
            _check_scores(scores, self._paths["scores"])
        features = self._get["features"](obj)
        if features is _MISSING or features is None:
            features = None
        else:
            _check_features(features, self._paths["features"])
        return Prediction(request_id, deployment, label, ts, model_version, scores, features)

    def feedback(self, obj: dict[str, Any], received_ts: float) -> Feedback:
        """Validate a parsed object as a feedback event."""
        request_id = self._required_str(obj, "request_id")
        deployment = self._required_str(obj, "deployment")
        ts = parse_ts(self._get["ts"](obj), received_ts)
        label = self._label(obj)
        correct = self._get["correct"](obj)
        if correct is _MISSING or correct is None:
            correct = None
        elif type(correct) is not bool:
            raise EventError(WRONG_TYPE, f"{self._paths['correct']!r} must be a boolean, not {_kind(correct)}")
        if label is None and correct is None:
            raise EventError(
                MISSING_FIELD,
                f"feedback needs {self._paths['label']!r} (the true class) or {self._paths['correct']!r}",
            )
        source = self._optional_str(obj, "source") or "user"
        if source not in FEEDBACK_SOURCES:
            raise EventError(WRONG_TYPE, f"{self._paths['source']!r} must be one of user, spotcheck")
        return Feedback(request_id, deployment, ts, label, correct, source)


def _check_scores(scores: Any, path: str) -> None:
    if type(scores) is not dict:
        raise EventError(WRONG_TYPE, f"{path!r} must be an object of class -> number, not {_kind(scores)}")
    for score in scores.values():
        # NaN fails the comparison, so it is refused here too.
        if type(score) not in _NUMBER_TYPES or not 0.0 <= score <= 1.0:
            _refuse_scores(scores)


_NUMBER_TYPES = frozenset((int, float))


def _refuse_scores(scores: dict[str, Any]) -> None:
    """Raise the EventError that names the first bad score (the slow path of _check_scores)."""
    for name, score in scores.items():
        if type(score) not in _NUMBER_TYPES:
            raise EventError(WRONG_TYPE, f"score of {name[:64]!r} must be a number, not {_kind(score)}")
        if not 0.0 <= score <= 1.0:
            raise EventError(SCORE_OUT_OF_RANGE, f"score of {name[:64]!r} is {score!r}, outside [0, 1]")


_FEATURE_TYPES = frozenset((str, int, float, bool, type(None)))


def _check_features(features: Any, path: str) -> None:
    if type(features) is not dict:
        raise EventError(WRONG_TYPE, f"{path!r} must be an object of name -> value, not {_kind(features)}")
    for value in features.values():
        if type(value) not in _FEATURE_TYPES:
            _refuse_features(features)


def _refuse_features(features: dict[str, Any]) -> None:
    """Raise the EventError that names the first bad feature (the slow path of _check_features)."""
    for name, value in features.items():
        if type(value) not in _FEATURE_TYPES:
            raise EventError(
                WRONG_TYPE,
                f"feature {name[:64]!r} must be a number, string, boolean or null, not {_kind(value)}",
            )
