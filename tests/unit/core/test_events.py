"""Tests of monitor.core.events: every dead-letter reason from a concrete bad input, the contract's examples, fuzz."""

from __future__ import annotations

import calendar
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.events import REASONS, EventDecoder, Feedback, Prediction, load_object, parse_ts, plain_prediction
from monitor.errors import EventError

RECEIVED = 1_700_000_000.0
MAX_BYTES = 4096

# docs/contract.md §1, verbatim.
CONTRACT_PREDICTION = b"""{"request_id": "r-81723", "ts": "2026-11-23T10:00:00.250Z", "deployment": "doc-classifier",
 "model_version": "v42", "label": "invoice",
 "scores": {"invoice": 0.91, "contract": 0.06, "other": 0.03},
 "features": {"n_pages": 3, "lang": "de", "text_len": 1834}}"""
CONTRACT_FEEDBACK = b"""{"request_id": "r-81723", "ts": "2026-11-23T10:04:10Z", "deployment": "doc-classifier",
 "label": "contract", "source": "user"}"""


def epoch(year: int, month: int, day: int, hour: int, minute: int, second: int) -> float:
    """UTC calendar time to epoch seconds, without datetime."""
    return float(calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)))


def valid_prediction(**changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "request_id": "r-1", "deployment": "doc-classifier", "label": "invoice",
        "ts": 1_700_000_100.5, "model_version": "v1",
        "scores": {"invoice": 0.7, "other": 0.3}, "features": {"n": 1, "lang": "de", "ok": True, "x": None},
    }
    for name, value in changes.items():
        if value is ...:
            obj.pop(name, None)
        else:
            obj[name] = value
    return obj


def valid_feedback(**changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"request_id": "r-1", "deployment": "doc-classifier", "label": "invoice", "source": "user"}
    for name, value in changes.items():
        if value is ...:
            obj.pop(name, None)
        else:
            obj[name] = value
    return obj


def decode_prediction(value: bytes | None, decoder: EventDecoder | None = None) -> Prediction:
    return (decoder or EventDecoder()).prediction(load_object(value, MAX_BYTES), RECEIVED)


def reason_of(action: Any) -> str:
    with pytest.raises(EventError) as caught:
        action()
    assert caught.value.reason in REASONS
    assert caught.value.detail
    return caught.value.reason


# -- every reason from a concrete bad input ---------------------------------------------------


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "empty_message"),
        (b"", "empty_message"),
        (b"{" + b" " * MAX_BYTES + b"}", "too_large"),
        (b'{"label": "caf\xe9"}', "invalid_utf8"),
        (b"\xff\xfe\xfd", "invalid_utf8"),
        (b"{not json", "not_json"),
        (b"   ", "not_json"),
        (b'{"scores": {"a": NaN}}', "not_json"),  # NaN is not JSON
        (b"[1, 2]", "not_object"),
        (b'"a string"', "not_object"),
        (b"null", "not_object"),
        (b"42", "not_object"),
    ],
)
def test_load_object_reasons(value: bytes | None, reason: str) -> None:
    assert reason_of(lambda: load_object(value, MAX_BYTES)) == reason


def test_load_object_size_limit_is_inclusive() -> None:
    padding = MAX_BYTES - len(b'{"a":""}')
    at_limit = b'{"a":"' + b"x" * padding + b'"}'
    assert len(at_limit) == MAX_BYTES
    assert load_object(at_limit, MAX_BYTES) == {"a": "x" * padding}
    over = b'{"a":"' + b"x" * (padding + 1) + b'"}'
    assert reason_of(lambda: load_object(over, MAX_BYTES)) == "too_large"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"request_id": ...}, "missing_field"),
        ({"request_id": ""}, "missing_field"),
        ({"request_id": None}, "missing_field"),
        ({"deployment": ...}, "missing_field"),
        ({"label": ...}, "missing_field"),
        ({"request_id": 81723}, "wrong_type"),
        ({"label": ["invoice"]}, "wrong_type"),
        ({"label": 7.0}, "wrong_type"),  # a class is named, not measured
        ({"label": 0.5}, "wrong_type"),
        ({"label": {"class": 7}}, "wrong_type"),
        ({"deployment": {"name": "x"}}, "wrong_type"),
        ({"model_version": 42}, "wrong_type"),
        ({"scores": [0.5, 0.5]}, "wrong_type"),
        ({"scores": {"invoice": "0.9"}}, "wrong_type"),
        ({"scores": {"invoice": True}}, "wrong_type"),  # a bool is not a number here
        ({"scores": {"invoice": 1.5}}, "score_out_of_range"),
        ({"scores": {"invoice": -0.1}}, "score_out_of_range"),
        ({"scores": {"invoice": 2}}, "score_out_of_range"),
        ({"features": [1, 2]}, "wrong_type"),
        ({"features": {"nested": {"a": 1}}}, "wrong_type"),
        ({"features": {"list": [1]}}, "wrong_type"),
        ({"ts": "yesterday"}, "bad_timestamp"),
        ({"ts": "2026-11-23T10:00:00"}, "bad_timestamp"),  # no time zone
        ({"ts": -1}, "bad_timestamp"),
        ({"ts": 1_700_000_000_000}, "bad_timestamp"),  # milliseconds, not seconds
        ({"ts": True}, "wrong_type"),
        ({"ts": [1]}, "wrong_type"),
    ],
)
def test_prediction_reasons(changes: dict[str, Any], reason: str) -> None:
    obj = valid_prediction(**changes)
    assert reason_of(lambda: EventDecoder().prediction(obj, RECEIVED)) == reason


def test_score_bounds_are_inclusive() -> None:
    prediction = EventDecoder().prediction(valid_prediction(scores={"a": 0, "b": 1.0, "c": 0.0, "d": 1}), RECEIVED)
    assert prediction.scores == {"a": 0, "b": 1.0, "c": 0.0, "d": 1}


def test_infinite_score_is_refused() -> None:
    # 1e400 overflows a double; whichever layer catches it, it is dead-lettered with a known reason.
    value = orjson.dumps(valid_prediction(scores={"a": 0.123456})).replace(b"0.123456", b"1e400")
    assert b"1e400" in value
    reason = reason_of(lambda: decode_prediction(value))
    assert reason in ("not_json", "score_out_of_range")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"label": ..., "correct": ...}, "missing_field"),
        ({"label": None}, "missing_field"),
        ({"label": ""}, "missing_field"),
        ({"request_id": ...}, "missing_field"),
        ({"deployment": ...}, "missing_field"),
        ({"label": 3.0}, "wrong_type"),
        ({"label": [3]}, "wrong_type"),
        ({"label": ..., "correct": "yes"}, "wrong_type"),
        ({"label": ..., "correct": 1}, "wrong_type"),
        ({"source": "robot"}, "wrong_type"),
        ({"source": 7}, "wrong_type"),
        ({"ts": "not a time"}, "bad_timestamp"),
    ],
)
def test_feedback_reasons(changes: dict[str, Any], reason: str) -> None:
    obj = valid_feedback(**changes)
    assert reason_of(lambda: EventDecoder().feedback(obj, RECEIVED)) == reason


def test_every_decoding_reason_is_covered_above() -> None:
    """The reasons decoding can give; the others come from state (unknown_class, ...) and routing."""
    decoding = {"too_large", "empty_message", "invalid_utf8", "not_json", "not_object", "missing_field",
                "wrong_type", "score_out_of_range", "bad_timestamp"}
    assert decoding <= set(REASONS)
    assert set(REASONS) - decoding == {"unknown_deployment", "unknown_class", "too_many_classes"}


# -- the contract's examples ------------------------------------------------------------------


def test_contract_prediction_decodes() -> None:
    prediction = decode_prediction(CONTRACT_PREDICTION)
    assert prediction == Prediction(
        request_id="r-81723",
        deployment="doc-classifier",
        label="invoice",
        ts=epoch(2026, 11, 23, 10, 0, 0) + 0.25,
        model_version="v42",
        scores={"invoice": 0.91, "contract": 0.06, "other": 0.03},
        features={"n_pages": 3, "lang": "de", "text_len": 1834},
    )


def test_contract_feedback_decodes() -> None:
    feedback = EventDecoder().feedback(load_object(CONTRACT_FEEDBACK, MAX_BYTES), RECEIVED)
    assert feedback == Feedback(
        request_id="r-81723", deployment="doc-classifier", ts=epoch(2026, 11, 23, 10, 4, 10),
        label="contract", correct=None, source="user",
    )


def test_prediction_optional_fields_may_be_absent() -> None:
    obj = {"request_id": "r-2", "deployment": "d", "label": "other"}
    assert EventDecoder().prediction(obj, RECEIVED) == Prediction("r-2", "d", "other", RECEIVED)


def test_feedback_with_correct_only_and_default_source() -> None:
    feedback = EventDecoder().feedback({"request_id": "r", "deployment": "d", "correct": False}, RECEIVED)
    assert (feedback.label, feedback.correct, feedback.source, feedback.ts) == (None, False, "user", RECEIVED)


def test_feedback_spotcheck_source_and_both_fields() -> None:
    obj = valid_feedback(source="spotcheck", correct=True)
    feedback = EventDecoder().feedback(obj, RECEIVED)
    assert (feedback.label, feedback.correct, feedback.source) == ("invoice", True, "spotcheck")


# -- timestamps -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2026-11-23T10:00:00Z", epoch(2026, 11, 23, 10, 0, 0)),
        ("2026-11-23T10:00:00.250Z", epoch(2026, 11, 23, 10, 0, 0) + 0.25),
        ("2026-11-23T11:30:00+01:30", epoch(2026, 11, 23, 10, 0, 0)),
        ("2026-11-23T05:00:00-05:00", epoch(2026, 11, 23, 10, 0, 0)),
        ("2026-11-23T10:00:00+00:00", epoch(2026, 11, 23, 10, 0, 0)),
        (1_795_428_000, 1_795_428_000.0),
        (1_795_428_000.75, 1_795_428_000.75),
        (0, 0.0),
    ],
)
def test_timestamps(ts: Any, expected: float) -> None:
    assert EventDecoder().prediction(valid_prediction(ts=ts), RECEIVED).ts == pytest.approx(expected, abs=1e-6)
    assert parse_ts(ts, RECEIVED) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("absent", [..., None])
def test_absent_timestamp_falls_back_to_the_received_time(absent: Any) -> None:
    assert EventDecoder().prediction(valid_prediction(ts=absent), RECEIVED).ts == RECEIVED
    assert EventDecoder().feedback(valid_feedback(ts=absent), RECEIVED).ts == RECEIVED


@pytest.mark.parametrize("ts", ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z"])
def test_implausible_rfc3339_time_is_refused_like_the_number(ts: str) -> None:
    assert reason_of(lambda: parse_ts(ts, RECEIVED)) == "bad_timestamp"
    assert reason_of(lambda: EventDecoder().prediction(valid_prediction(ts=ts), RECEIVED)) == "bad_timestamp"


# -- field remapping --------------------------------------------------------------------------


def test_field_remapping_by_dotted_paths() -> None:
    decoder = EventDecoder({"label": "output.class", "request_id": "meta.id"})
    obj = {"meta": {"id": "req-9"}, "deployment": "d", "output": {"class": "contract", "p": 0.8}, "ts": 100}
    prediction = decoder.prediction(obj, RECEIVED)
    assert (prediction.request_id, prediction.label, prediction.deployment, prediction.ts) == (
        "req-9", "contract", "d", 100.0,
    )


def test_remapped_path_through_a_non_object_is_missing() -> None:
    decoder = EventDecoder({"label": "output.class", "request_id": "meta.id"})
    obj = {"meta": {"id": "req-9"}, "deployment": "d", "output": "contract"}
    assert reason_of(lambda: decoder.prediction(obj, RECEIVED)) == "missing_field"


def test_remapped_field_ignores_the_contract_name() -> None:
    decoder = EventDecoder({"label": "output.class"})
    obj = {"request_id": "r", "deployment": "d", "label": "invoice"}
    assert reason_of(lambda: decoder.prediction(obj, RECEIVED)) == "missing_field"


def test_remapped_feedback_and_deployment_of() -> None:
    decoder = EventDecoder({"deployment": "ctx.app", "correct": "verdict.ok", "source": "verdict.by"})
    obj = {"request_id": "r", "ctx": {"app": "dc"}, "verdict": {"ok": True, "by": "spotcheck"}}
    assert decoder.deployment_of(obj) == "dc"
    assert decoder.deployment_of({"request_id": "r"}) is None
    feedback = decoder.feedback(obj, RECEIVED)
    assert (feedback.deployment, feedback.correct, feedback.source, feedback.label) == ("dc", True, "spotcheck", None)


# -- fuzzing ----------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)
time_strings = st.datetimes().map(lambda moment: moment.isoformat()) | st.builds(
    lambda moment, minutes: moment.isoformat() + ("+" if minutes >= 0 else "-") + f"{abs(minutes) // 60:02d}:"
    f"{abs(minutes) % 60:02d}",
    st.datetimes(),
    st.integers(min_value=-23 * 60, max_value=23 * 60),
)
field_names = ("request_id", "deployment", "label", "ts", "model_version", "scores", "features", "correct", "source")
# Objects shaped like events, each field either absent or an arbitrary (often wrong) value.
event_like = st.fixed_dictionaries(
    {},
    optional={name: json_values | (time_strings if name == "ts" else st.text(max_size=5)) for name in field_names},
)
fuzz_settings = settings(max_examples=300, deadline=None)


def decode_or_reason(value: bytes) -> None:
    """Either a Prediction/Feedback comes out, or an EventError with a known reason; nothing else."""
    decoder = EventDecoder()
    try:
        obj = load_object(value, MAX_BYTES)
    except EventError as error:
        assert error.reason in REASONS
        return
    assert isinstance(obj, dict)
    for decode, kind in ((decoder.prediction, Prediction), (decoder.feedback, Feedback)):
        try:
            event = decode(obj, RECEIVED)
        except EventError as error:
            assert error.reason in REASONS
        else:
            assert isinstance(event, kind)
            assert isinstance(event.request_id, str) and event.request_id
            assert isinstance(event.ts, float)


@fuzz_settings
@given(st.binary(max_size=200))
def test_fuzz_arbitrary_bytes(value: bytes) -> None:
    decode_or_reason(value)


@fuzz_settings
@given(json_values)
def test_fuzz_arbitrary_json(value: Any) -> None:
    decode_or_reason(orjson.dumps(value))


@fuzz_settings
@given(event_like)
def test_fuzz_event_shaped_json(obj: dict[str, Any]) -> None:
    decode_or_reason(orjson.dumps(obj))


@fuzz_settings
@given(event_like)
def test_fuzz_decoded_prediction_respects_the_contract(obj: dict[str, Any]) -> None:
    try:
        prediction = EventDecoder().prediction(obj, RECEIVED)
    except EventError:
        return
    assert prediction.label and prediction.deployment is not None
    if prediction.scores is not None:
        assert all(type(s) in (int, float) and 0 <= s <= 1 for s in prediction.scores.values())
    if prediction.features is not None:
        assert all(type(v) in (int, float, str, bool, type(None)) for v in prediction.features.values())


def outcome(decode: Any, obj: dict[str, Any]) -> Any:
    try:
        return decode(obj, RECEIVED)
    except EventError as error:
        return error.reason


@fuzz_settings
@given(event_like)
def test_fuzz_fast_path_agrees_with_the_general_validation(obj: dict[str, Any]) -> None:
    """The contract-named decoder (a fast path) and a remapped one (the general path) agree on predictions."""
    general = EventDecoder({"source": "not_read_by_predictions"})
    assert outcome(EventDecoder().prediction, obj) == outcome(general.prediction, obj)


# -- the one-pass decoder of plain predictions (the hot path) ----------------------------------

# Integers stay within a double's exact range: past it orjson rounds them to floats, msgspec keeps
# them exact; the feature state takes both as the same number.
_JSON_SCALARS = (
    st.none() | st.booleans() | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8)
)
_JSON_VALUES = st.recursive(
    _JSON_SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=6,
)
_ABSENT = object()
# Every integer orjson writes and reads as one (past them, it reads a float).
_INTEGERS = st.integers(-(2**63), 2**64 - 1)


_VALID_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "request_id": st.text(min_size=1, max_size=12),
    "deployment": st.sampled_from(["doc-classifier", ""]),
    "label": st.sampled_from(["invoice", "other", "Vertrag ü"]) | _INTEGERS | st.booleans(),
    "ts": st.floats(-10, 2e11) | st.integers(0, 2 * 10**11) | st.sampled_from(
        ["2026-11-23T10:00:00Z", "2026-11-23T10:00:00", "yesterday"]) | st.none(),
    "model_version": st.sampled_from(["v1", ""]) | st.none(),
    "scores": st.dictionaries(st.text(max_size=4), st.floats(-0.5, 1.5) | st.integers(-1, 2), max_size=3),
    "features": st.dictionaries(st.text(max_size=4), _JSON_SCALARS, max_size=3),
    "extra": _JSON_VALUES,
}


@st.composite
def _predictions(draw: st.DrawFn) -> dict[str, Any]:
    """A prediction-like object: each field from its plausible values, and up to two of them
    replaced by anything JSON can say, or left out."""
    fields = {name: draw(values) for name, values in _VALID_FIELDS.items()}
    for name in draw(st.sets(st.sampled_from(sorted(_VALID_FIELDS)), max_size=2)):
        fields[name] = draw(_JSON_VALUES | st.just(_ABSENT))
    return {name: value for name, value in fields.items() if value is not _ABSENT}


_PREDICTIONS = _predictions()


def _outcome(decode: Any) -> tuple[str, Any]:
    try:
        return "ok", decode()
    except EventError as error:
        return "refused", error.reason


@settings(max_examples=600)
@given(_PREDICTIONS)
def test_plain_prediction_accepts_and_refuses_what_the_general_path_does(fields: dict[str, Any]) -> None:
    value = orjson.dumps(fields)
    general = _outcome(lambda: EventDecoder().prediction(load_object(value, MAX_BYTES), RECEIVED))
    kind, plain = _outcome(lambda: plain_prediction(value, RECEIVED))
    if (kind, plain) == ("ok", None):
        # Handed on to the general path: only ever what that path refuses, or a null ts.
        assert general[0] == "refused" or ("ts" in fields and fields["ts"] is None)
    else:
        assert (kind, _fields(plain)) == (general[0], _fields(general[1]))


def _fields(prediction: Any) -> Any:
    """A prediction's fields in order (the plain path's struct is of a subclass of the general path's)."""
    return msgspec.structs.astuple(prediction) if isinstance(prediction, Prediction) else prediction


def test_plain_prediction_decodes_the_contract_example() -> None:
    plain = plain_prediction(CONTRACT_PREDICTION, RECEIVED)
    assert plain is not None
    assert _fields(plain) == _fields(EventDecoder().prediction(load_object(CONTRACT_PREDICTION, MAX_BYTES), RECEIVED))


@pytest.mark.parametrize(
    "ts", [b"", b', "ts": 1800000000', b', "ts": 1800000000.5', b', "ts": "2026-11-23T10:00:00.1234567Z"']
)
def test_plain_prediction_takes_epoch_seconds_a_time_string_or_no_time(ts: bytes) -> None:
    value = b'{"request_id": "r", "deployment": "d", "label": "x"' + ts + b"}"
    plain = plain_prediction(value, RECEIVED)
    assert plain is not None
    assert plain.ts == EventDecoder().prediction(load_object(value, MAX_BYTES), RECEIVED).ts


@pytest.mark.parametrize(
    "value",
    [
        # invalid UTF-8 inside a field no one reads: msgspec would skip it unread
        b'{"request_id": "r", "deployment": "d", "label": "x", "note": "\xc3\x28"}',
        b'{"request_id": "r", "deployment": "d", "label": "x", "scores": {"x": true}}',
        b'{"request_id": "r", "deployment": "d", "label": "x", "features": {"x": [1]}}',
        b'{"request_id": "", "deployment": "d", "label": "x"}',
        b'{"request_id": "r", "deployment": "d", "label": "x", "ts": true}',
        b'[{"request_id": "r", "deployment": "d", "label": "x"}]',
        b'{"request_id": "r", "deployment": "d", "label": "x"',
    ],
)
def test_plain_prediction_hands_every_defect_to_the_general_path(value: bytes) -> None:
    assert plain_prediction(value, RECEIVED) is None
    with pytest.raises(EventError):
        EventDecoder().prediction(load_object(value, MAX_BYTES), RECEIVED)


# -- labels as classifiers emit them: integers and booleans name the class of their text --------


@settings(max_examples=300)
@given(_INTEGERS)
def test_an_integer_label_is_the_class_of_its_text(label: int) -> None:
    value = orjson.dumps(valid_prediction(label=label))
    plain = plain_prediction(value, RECEIVED)
    assert plain is not None and plain.label == str(label)
    assert decode_prediction(value).label == str(label)
    assert EventDecoder().feedback(valid_feedback(label=label), RECEIVED).label == str(label)
    remapped = EventDecoder({"label": "output.class"})
    assert remapped.prediction({**valid_prediction(), "output": {"class": label}}, RECEIVED).label == str(label)


@pytest.mark.parametrize(("label", "name"), [(True, "true"), (False, "false"), (0, "0"), (-1, "-1")])
def test_booleans_are_named_as_json_writes_them(label: Any, name: str) -> None:
    value = orjson.dumps(valid_prediction(label=label))
    plain = plain_prediction(value, RECEIVED)
    assert plain is not None and plain.label == name
    assert decode_prediction(value).label == name
    assert EventDecoder().feedback(valid_feedback(label=label), RECEIVED).label == name


@settings(max_examples=200)
@given(_INTEGERS)
def test_seven_and_the_string_seven_decode_alike(label: int) -> None:
    as_number, as_text = orjson.dumps(valid_prediction(label=label)), orjson.dumps(valid_prediction(label=str(label)))
    assert _fields(plain_prediction(as_number, RECEIVED)) == _fields(plain_prediction(as_text, RECEIVED))
    assert _fields(decode_prediction(as_number)) == _fields(decode_prediction(as_text))


@pytest.mark.parametrize("label", [b"7.0", b"7e0", b"0.5", b"-1.5", b"18446744073709551616", b"-9223372036854775809"])
def test_a_float_label_is_refused_with_a_clear_detail(label: bytes) -> None:
    """A number with a fraction, or an integer too large to read as one (orjson reads a float)."""
    value = b'{"request_id": "r", "deployment": "d", "label": ' + label + b"}"
    assert plain_prediction(value, RECEIVED) is None
    with pytest.raises(EventError) as refused:
        decode_prediction(value)
    assert refused.value.reason == "wrong_type"
    assert "'label' must be a string or an integer, not the number" in refused.value.detail
    feedback = b'{"request_id": "r", "deployment": "d", "correct": true, "label": ' + label + b"}"
    assert reason_of(lambda: EventDecoder().feedback(load_object(feedback, MAX_BYTES), RECEIVED)) == "wrong_type"
