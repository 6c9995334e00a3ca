"""Hostile input: the decoder and the ingest fuzzed, with no crash and every message accounted for.

hypothesis drives the bounded runs in the suite (``DRIFTGATE_FUZZ_EXAMPLES`` scales them).
With atheris installed, a coverage-guided run of a few seconds is part of the suite too; a
longer one, from the repository root (``make fuzz`` runs both for longer):

    mkdir -p fuzz-corpus && .venv/bin/python tests/unit/test_fuzz.py -max_total_time=600 fuzz-corpus

(any libFuzzer flag works: ``-runs=N``, ``-jobs=4``; the corpus directory keeps what it
found for the next run, and is seeded with sample events when empty).
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.config import Settings, parse_config
from monitor.core.events import REASONS, EventDecoder, load_object
from monitor.core.ingest import UNROUTED, Ingest
from monitor.core.records import Record
from monitor.errors import EventError
from monitor.sidecar.checkpoint import encode

EXAMPLES = int(os.environ.get("DRIFTGATE_FUZZ_EXAMPLES", "300"))
MAX_BYTES = 4096
MAX_CLASSES = 8
TOPICS = ("f.live", "f.canary", "f.feedback", "s.live", "s.canary", "s.feedback")
NOW = 1_800_000_000.0


def fuzz_settings() -> Settings:
    return parse_config(
        {
            "kafka": {"max_message_bytes": MAX_BYTES},
            "deployments": [
                # Learns its classes, up to the cap.
                {"name": "fuzz", "max_classes": MAX_CLASSES,
                 "topics": {"live": "f.live", "canary": "f.canary", "feedback": "f.feedback"}},
                # Fixed classes and remapped fields.
                {"name": "shaped", "classes": ["a", "b"], "fields": {"label": "out.class", "request_id": "meta.id"},
                 "topics": {"live": "s.live", "canary": "s.canary", "feedback": "s.feedback"}},
            ],
        },
        {},
    )


def check_accounted_for(ingest: Ingest) -> None:
    assert ingest.consumed == ingest.processed + ingest.dead_lettered
    assert all(reason in REASONS for _, reason in ingest.dead_letters)
    for state in ingest.states.values():
        assert len(state.classes) <= max(MAX_CLASSES, 2)


def feed(ingest: Ingest, values: list[tuple[int, bytes | None]]) -> None:
    """Fold one batch of (topic index, value) into the ingest and check the books."""
    offsets: dict[str, int] = {}
    records = []
    for index, value in values:
        topic = TOPICS[index % len(TOPICS)]
        offsets[topic] = offsets.get(topic, -1) + 1
        records.append(Record(topic, 0, offsets[topic], b"k", value, NOW))
    consumed_before = ingest.consumed
    dead = ingest.process(records, now=NOW)
    assert ingest.consumed - consumed_before == len(records)
    assert all(letter.reason in REASONS for letter in dead)
    check_accounted_for(ingest)


def json_values(depth: int = 3) -> st.SearchStrategy[Any]:
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.text(max_size=10), inner, max_size=4), max_leaves=12)


FIELDS = ("request_id", "deployment", "label", "ts", "model_version", "scores", "features", "correct", "source")


@st.composite
def event_like(draw: st.DrawFn) -> bytes:
    """Objects shaped like events, with each field present, absent or of a wrong type."""
    obj: dict[str, Any] = {}
    for field in FIELDS:
        choice = draw(st.integers(0, 3))
        if choice == 0:
            continue
        if choice == 1:
            obj[field] = draw(json_values())
        elif field == "deployment":
            obj[field] = draw(st.sampled_from(["fuzz", "shaped", "elsewhere", ""]))
        elif field == "label":
            obj[field] = draw(st.text(min_size=0, max_size=6))
        elif field == "ts":
            obj[field] = draw(st.floats(allow_nan=True) | st.integers() | st.text(max_size=30))
        elif field == "scores":
            obj[field] = draw(st.dictionaries(st.text(max_size=5), st.floats() | st.integers(), max_size=4))
        else:
            obj[field] = draw(st.text(max_size=12))
    if draw(st.booleans()):
        obj["out"] = {"class": draw(st.sampled_from(["a", "b", "c"]))}
        obj["meta"] = {"id": draw(st.text(max_size=8))}
    try:
        return orjson.dumps(obj)
    except TypeError:  # an integer orjson will not write: send Python's rendering instead
        return json.dumps(obj).encode()


hostile = st.one_of(
    st.binary(max_size=300),
    event_like(),
    st.binary(max_size=40).map(lambda tail: b'{"label": "\xff' + tail + b'"}'),  # invalid UTF-8 inside JSON
    st.integers(1, 5000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(MAX_BYTES - 10, MAX_BYTES + 10).map(lambda size: b'{"x": "' + b"y" * size + b'"}'),
    st.none(),
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=500))
def test_load_object_returns_an_object_or_a_known_reason(value: bytes) -> None:
    try:
        obj = load_object(value, MAX_BYTES)
    except EventError as error:
        assert error.reason in REASONS
    else:
        assert isinstance(obj, dict)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_like(), st.booleans())
def test_the_decoder_validates_or_refuses_with_a_known_reason(value: bytes, as_feedback: bool) -> None:
    decoder = EventDecoder(max_bytes=MAX_BYTES)
    try:
        obj = load_object(value, MAX_BYTES)
        event = decoder.feedback(obj, NOW) if as_feedback else decoder.prediction(obj, NOW)
    except EventError as error:
        assert error.reason in REASONS
    else:
        assert event.request_id and event.deployment


@settings(max_examples=EXAMPLES // 2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(TOPICS) - 1), hostile), min_size=1, max_size=40))
def test_every_hostile_message_is_processed_or_dead_lettered(values: list[tuple[int, bytes | None]]) -> None:
    feed(Ingest(fuzz_settings()), values)


@pytest.mark.parametrize("depth", [100, 1000, 5000, 100_000])
def test_deeply_nested_json_is_dead_lettered(depth: int) -> None:
    ingest = Ingest(fuzz_settings())
    nested_object = b'{"a":' * depth + b"1" + b"}" * depth
    feed(ingest, [(0, b"[" * depth + b"]" * depth), (1, nested_object)])
    # Within the size limit a deep value parses or not; either way it is no event.
    assert ingest.processed == 0
    assert ingest.dead_lettered == 2


def test_invalid_utf8_is_named() -> None:
    for value in (b"\xff", b'{"label": "\xc3\x28"}', b"\xed\xa0\x80", b'{"a": "\xf0\x28\x8c\xbc"}'):
        with pytest.raises(EventError) as refused:
            load_object(value, MAX_BYTES)
        assert refused.value.reason == "invalid_utf8"


def prediction(request_id: str, label: str, features: dict[str, Any] | None = None) -> bytes:
    return orjson.dumps({"request_id": request_id, "deployment": "fuzz", "label": label, "ts": NOW,
                         "model_version": "v1", "features": features or {}})


def test_the_class_cap_keeps_memory_bounded_and_counts_what_it_refuses() -> None:
    ingest = Ingest(fuzz_settings())
    n = 20_000
    for start in range(0, n, 2000):
        feed(ingest, [(0, prediction(f"r{i}", f"class-{i}")) for i in range(start, start + 2000)])
    state = ingest.states["fuzz"]
    assert len(state.classes) == MAX_CLASSES
    assert ingest.dead_letters[("fuzz", "too_many_classes")] == n - MAX_CLASSES
    assert ingest.processed == MAX_CLASSES
    # The state (as a checkpoint holds it) does not grow with the classes refused.
    small = Ingest(fuzz_settings())
    feed(small, [(0, prediction(f"r{i}", f"class-{i}")) for i in range(MAX_CLASSES * 2)])
    assert len(encode(ingest)) < len(encode(small)) * 1.5


def test_distinct_feature_names_do_not_grow_the_state() -> None:
    plain, featured = Ingest(fuzz_settings()), Ingest(fuzz_settings())
    labels = ["a", "b", "c"]
    for start in range(0, 6000, 1000):
        ids = range(start, start + 1000)
        feed(plain, [(0, prediction(f"r{i}", labels[i % 3])) for i in ids])
        feed(featured, [(0, prediction(f"r{i}", labels[i % 3], {f"feature-{i}-{k}": k for k in range(40)}))
                        for i in ids])
    assert featured.processed == plain.processed == 6000
    assert len(encode(featured)) < len(encode(plain)) * 1.5


def test_unknown_deployments_on_a_shared_topic_are_counted_apart() -> None:
    ingest = Ingest(fuzz_settings())
    feed(ingest, [(0, b'{"request_id": "r", "deployment": "elsewhere", "label": "x"}')])
    assert sum(n for (deployment, _), n in ingest.dead_letters.items() if deployment in ("fuzz", UNROUTED)) == 1


# -- atheris ------------------------------------------------------------------------------------


def write_seeds(corpus: Path) -> None:
    """Valid and near-valid messages for libFuzzer to start from (the first byte picks the topic)."""
    corpus.mkdir(parents=True, exist_ok=True)
    seeds = [
        bytes([0]) + prediction("r1", "invoice", {"n_pages": 3, "lang": "de"}),
        bytes([1]) + orjson.dumps({"request_id": "r1", "deployment": "fuzz", "label": "other", "model_version": "v2",
                                   "ts": "2026-11-23T10:00:00.250Z", "scores": {"other": 0.9, "invoice": 0.1}}),
        bytes([2]) + orjson.dumps({"request_id": "r1", "deployment": "fuzz", "label": "invoice", "source": "user"}),
        bytes([2]) + orjson.dumps({"request_id": "r1", "deployment": "fuzz", "correct": False, "ts": NOW}),
        bytes([3]) + orjson.dumps({"meta": {"id": "r2"}, "deployment": "shaped", "out": {"class": "a"}}),
        bytes([4]) + orjson.dumps({"meta": {"id": "r2"}, "deployment": "shaped", "out": {"class": "b"},
                                   "model_version": "v9"}),
        bytes([0]) + b'{"request_id": "r3", "deployment": "fuzz", "label": "x", "scores": {"x": 1.5}}',
    ]
    for number, seed in enumerate(seeds):
        (corpus / f"seed-{number}").write_bytes(seed)


def test_a_short_coverage_guided_run_finds_no_crash(tmp_path: Path) -> None:
    pytest.importorskip("atheris")
    write_seeds(tmp_path / "corpus")
    result = subprocess.run(
        [sys.executable, __file__, "-max_total_time=5", "-rss_limit_mb=2048", f"-artifact_prefix={tmp_path}/",
         str(tmp_path / "corpus")],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Done" in result.stderr


def fuzz_one(data: bytes) -> None:
    """The atheris target: one message, its topic picked by the first byte, through load_object and the ingest."""
    if not data:
        return
    topic_index, value = data[0], data[1:]
    try:
        obj = load_object(value, MAX_BYTES)
    except EventError as error:
        assert error.reason in REASONS, error.reason
    else:
        assert isinstance(obj, dict)
    feed(FUZZ_INGEST, [(topic_index, value)])


FUZZ_INGEST: Ingest


def main() -> None:
    import atheris

    global FUZZ_INGEST
    # monitor is imported already: instrument its functions in place for coverage feedback
    # (all of them, numpy and pydantic included, would take minutes).
    for code_owner in gc.get_objects():
        if isinstance(code_owner, types.FunctionType) and (code_owner.__module__ or "").startswith("monitor"):
            atheris.instrument_func(code_owner)
    FUZZ_INGEST = Ingest(fuzz_settings())
    corpora = [Path(arg) for arg in sys.argv[1:] if not arg.startswith("-")]
    for corpus in corpora:
        if not corpus.exists() or not any(corpus.iterdir()):
            write_seeds(corpus)
    atheris.Setup(sys.argv, fuzz_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
