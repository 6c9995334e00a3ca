"""Tests of monitor.core.ingest: every record is processed or dead-lettered, positions, routing."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from monitor.config import Settings, parse_config
from monitor.core.events import REASONS
from monitor.core.ingest import Ingest
from monitor.core.records import Record

NOW = 1_795_000_000.0
CLASSES = ["invoice", "contract", "other"]


def settings(**kafka: Any) -> Settings:
    return parse_config(
        {
            "kafka": kafka,
            "deployments": [
                {"name": "docs", "classes": CLASSES,
                 "topics": {"live": "d.live", "canary": "d.canary", "feedback": "d.feedback"}},
                # Two deployments sharing their topics: the payload's deployment routes.
                {"name": "mail", "topics": {"live": "shared.live", "canary": "shared.canary", "feedback": "shared.fb"}},
                {"name": "chat", "topics": {"live": "shared.live", "canary": "shared.canary", "feedback": "shared.fb"}},
            ],
        },
        {},
    )


def payload(deployment: str = "docs", request_id: str = "r1", label: str = "invoice", **extra: Any) -> bytes:
    return orjson.dumps({"request_id": request_id, "deployment": deployment, "label": label,
                         "ts": NOW, "model_version": "v2", **extra})


class Batch:
    """Builds records with consecutive offsets per (topic, partition)."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self._next: Counter[tuple[str, int]] = Counter()

    def add(self, topic: str, value: bytes | None, partition: int = 0) -> Record:
        offset = 100 + self._next[(topic, partition)]
        self._next[(topic, partition)] += 1
        record = Record(topic, partition, offset, b"key", value, timestamp=NOW)
        self.records.append(record)
        return record


def test_good_and_bad_records_are_all_accounted_for() -> None:
    ingest = Ingest(settings(max_message_bytes=256))
    batch = Batch()
    good = [
        batch.add("d.live", payload(request_id="r1")),
        batch.add("d.canary", payload(request_id="r1", label="other")),
        batch.add("d.live", payload(request_id="r2", label="contract"), partition=1),
        batch.add("d.feedback", orjson.dumps({"request_id": "r1", "deployment": "docs", "label": "other"})),
    ]
    bad_records = [
        ("empty_message", batch.add("d.live", None)),
        ("empty_message", batch.add("d.live", b"")),
        ("too_large", batch.add("d.live", payload(pad="x" * 300))),
        ("invalid_utf8", batch.add("d.canary", b"\xff\xfe")),
        ("not_json", batch.add("d.canary", b"{oops")),
        ("not_object", batch.add("d.live", b"[1, 2, 3]", partition=1)),
        ("missing_field", batch.add("d.live", orjson.dumps({"request_id": "r9", "deployment": "docs"}))),
        ("wrong_type", batch.add("d.canary", payload(label=7.5))),
        ("unknown_class", batch.add("d.canary", payload(label=7))),  # the class "7"
        ("score_out_of_range", batch.add("d.canary", payload(scores={"invoice": 1.5}))),
        ("bad_timestamp", batch.add("d.live", payload(ts="soon"))),
        ("unknown_class", batch.add("d.live", payload(label="receipt"))),
        ("unknown_deployment", batch.add("d.live", payload(deployment="nobody"))),
    ]
    dead = ingest.process(batch.records, now=NOW)

    assert ingest.consumed == len(batch.records)
    assert ingest.processed == len(good)
    assert ingest.consumed == ingest.processed + ingest.dead_lettered
    assert len(dead) == ingest.dead_lettered == len(batch.records) - len(good)
    by_record = {id(letter.record): letter for letter in dead}
    for reason, record in bad_records:
        letter = by_record[id(record)]
        assert letter.reason == reason, (reason, letter.detail)
        assert letter.record is record  # the original bytes, topic, partition and offset
        assert letter.detail
    assert ingest.states["docs"].events == {"live": 2, "canary": 1, "feedback": 1}


def test_dead_letter_headers_carry_origin_and_reason() -> None:
    ingest = Ingest(settings())
    batch = Batch()
    record = batch.add("d.canary", b"{oops", partition=3)
    [letter] = ingest.process(batch.records, now=NOW)
    headers = dict(letter.headers())
    assert headers["driftgate.reason"] == b"not_json"
    assert headers["driftgate.source.topic"] == b"d.canary"
    assert headers["driftgate.source.partition"] == b"3"
    assert headers["driftgate.source.offset"] == str(record.offset).encode()
    assert headers["driftgate.deployment"] == b"docs"
    assert ingest.dead_letters == {("docs", "not_json"): 1}


def test_positions_advance_to_offset_plus_one_per_partition() -> None:
    ingest = Ingest(settings())
    batch = Batch()
    for i in range(3):
        batch.add("d.live", payload(request_id=f"a{i}"), partition=0)
    for i in range(5):
        batch.add("d.live", payload(request_id=f"b{i}"), partition=1)
    batch.add("d.canary", b"not json at all", partition=0)  # a dead letter still moves the position
    ingest.process(batch.records, now=NOW)
    last = {}
    for record in batch.records:
        last[(record.topic, record.partition)] = record.offset
    assert ingest.positions == {key: offset + 1 for key, offset in last.items()}
    assert ingest.positions[("d.live", 1)] == 100 + 5


def test_shared_topic_routes_by_the_payloads_deployment() -> None:
    ingest = Ingest(settings())
    batch = Batch()
    batch.add("shared.live", payload("mail", "m1"))
    batch.add("shared.live", payload("mail", "m2"))
    batch.add("shared.canary", payload("chat", "c1"))
    batch.add("shared.fb", orjson.dumps({"request_id": "c1", "deployment": "chat", "correct": True}))
    unknown = batch.add("shared.live", payload("nobody", "x1"))
    dead = ingest.process(batch.records, now=NOW)
    assert ingest.states["mail"].events == {"live": 2, "canary": 0, "feedback": 0}
    assert ingest.states["chat"].events == {"live": 0, "canary": 1, "feedback": 1}
    assert ingest.states["docs"].events == {"live": 0, "canary": 0, "feedback": 0}
    assert [(letter.record, letter.reason) for letter in dead] == [(unknown, "unknown_deployment")]


def test_missing_deployment_on_a_shared_topic_is_missing_field() -> None:
    ingest = Ingest(settings())
    batch = Batch()
    batch.add("shared.live", orjson.dumps({"request_id": "x", "label": "invoice"}))
    [letter] = ingest.process(batch.records, now=NOW)
    assert letter.reason == "missing_field"


def test_feedback_is_counted() -> None:
    ingest = Ingest(settings())
    batch = Batch()
    for i in range(4):
        batch.add("d.feedback", orjson.dumps({"request_id": f"r{i}", "deployment": "docs", "label": "invoice"}))
    batch.add("d.feedback", orjson.dumps({"request_id": "r9", "deployment": "docs"}))  # neither label nor correct
    dead = ingest.process(batch.records, now=NOW)
    assert ingest.states["docs"].events["feedback"] == 4
    assert [letter.reason for letter in dead] == ["missing_field"]


def test_received_time_falls_back_to_the_record_then_now() -> None:
    ingest = Ingest(settings())
    no_ts = orjson.dumps({"request_id": "r1", "deployment": "docs", "label": "invoice"})
    ingest.process([Record("d.live", 0, 0, None, no_ts, timestamp=NOW + 50)], now=NOW)
    assert ingest.states["docs"].watermark == NOW + 50
    ingest.process([Record("d.live", 0, 1, None, no_ts, timestamp=None)], now=NOW + 80)
    assert ingest.states["docs"].watermark == NOW + 80


def test_topics_lists_every_input_topic_once() -> None:
    assert sorted(Ingest(settings()).topics) == sorted(
        ["d.live", "d.canary", "d.feedback", "shared.live", "shared.canary", "shared.fb"]
    )


def test_counts_add_up_over_several_batches() -> None:
    ingest = Ingest(settings())
    for n in range(3):
        batch = Batch()
        batch.add("d.live", payload(request_id=f"r{n}"))
        batch.add("d.live", b"")
        ingest.process(batch.records, now=NOW)
    assert (ingest.consumed, ingest.processed, ingest.dead_lettered) == (6, 3, 3)
    assert ingest.dead_letters == {("docs", "empty_message"): 3}


record_values = st.one_of(
    st.none(),
    st.binary(max_size=80),
    st.builds(
        lambda deployment, label, request_id: payload(deployment, request_id, label),
        st.sampled_from(["docs", "mail", "chat", "nobody", ""]),
        st.sampled_from(["invoice", "contract", "other", "receipt", ""]),
        st.text(max_size=4),
    ),
)


@hypothesis_settings(deadline=None, max_examples=100)
@given(st.lists(st.tuples(st.sampled_from(["d.live", "d.canary", "d.feedback", "shared.live", "shared.canary",
                                           "shared.fb"]), record_values), max_size=30))
def test_fuzz_every_record_is_processed_or_dead_lettered(rows: list[tuple[str, bytes | None]]) -> None:
    ingest = Ingest(settings(max_message_bytes=64))
    batch = Batch()
    for topic, value in rows:
        batch.add(topic, value)
    dead = ingest.process(batch.records, now=NOW)
    assert ingest.consumed == len(rows) == ingest.processed + ingest.dead_lettered
    assert len(dead) == ingest.dead_lettered
    assert {letter.reason for letter in dead} <= set(REASONS)


def test_a_deployment_not_fed_by_the_topic_is_refused_alike_on_either_path() -> None:
    ingest = Ingest(settings())
    batch = Batch()
    # A prediction takes the one-pass path; feedback the general one.
    prediction = batch.add("shared.live", payload("nobody", "x1"))
    feedback = batch.add("shared.fb", orjson.dumps({"request_id": "x1", "deployment": "nobody", "correct": True}))
    single = batch.add("d.live", payload("nobody", "x2"))
    dead = ingest.process(batch.records, now=NOW)
    shared_detail = "deployment 'nobody' is not configured on this topic (chat, mail)"
    assert [(letter.record, letter.reason, letter.detail, letter.deployment) for letter in dead] == [
        (prediction, "unknown_deployment", shared_detail, None),
        (feedback, "unknown_deployment", shared_detail, None),
        (single, "unknown_deployment", "deployment 'nobody' is not configured on this topic (docs)", "docs"),
    ]
    assert ingest.consumed == ingest.processed + ingest.dead_lettered


def digit_settings(fields: dict[str, str]) -> Settings:
    return parse_config(
        {"deployments": [{"name": "digits", "classes": [0, 1, 2], "fields": fields,
                          "topics": {"live": "g.live", "canary": "g.canary", "feedback": "g.feedback"}}]},
        {},
    )


@hypothesis_settings(deadline=None, max_examples=60)
@given(
    st.lists(st.tuples(st.integers(0, 2), st.booleans()), min_size=1, max_size=30),
    st.sampled_from([{}, {"label": "output.class"}]),
)
def test_integer_and_text_labels_fold_into_one_count(labels: list[tuple[int, bool]], fields: dict[str, str]) -> None:
    """`classes: [0, 1, 2]` names the classes "0", "1", "2"; a label 7 and a label "7" are one class,
    on the one-pass path (contract field names) and on the general one (a remapped label)."""
    ingest = Ingest(digit_settings(fields))
    batch = Batch()
    for i, (label, as_text) in enumerate(labels):
        value: int | str = str(label) if as_text else label
        event = {"request_id": f"r{i}", "deployment": "digits", "ts": NOW, "model_version": "v1"}
        if fields:
            event["output"] = {"class": value}
        else:
            event["label"] = value
        batch.add("g.live", orjson.dumps(event))
        batch.add("g.feedback", orjson.dumps({"request_id": f"r{i}", "deployment": "digits", **event, "ts": NOW}))
    unknown = batch.add("g.live", orjson.dumps({"request_id": "x", "deployment": "digits", "label": 3,
                                                "output": {"class": 3}}))
    dead = ingest.process(batch.records, now=NOW)
    state = ingest.states["digits"]
    assert state.classes == ["0", "1", "2"]
    assert state.totals["live"]["v1"].counts == Counter(str(label) for label, _ in labels)
    assert state.events == {"live": len(labels), "canary": 0, "feedback": len(labels)}
    assert [(letter.record, letter.reason) for letter in dead] == [(unknown, "unknown_class")]
