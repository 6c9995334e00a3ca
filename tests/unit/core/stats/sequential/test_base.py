"""Tests of monitor.core.stats.sequential.base: what every check shares (checkpoints, merging, examples)."""

from __future__ import annotations

import doctest
import importlib
import json

import pytest
from msgspec import ValidationError

from monitor.core.state.codec import clone, decode, encode
from monitor.core.stats.confidence_sequence import BetGrid, BoundedMeanCS
from monitor.core.stats.sequential import PairedAccuracy, PairedDifference, RateBelow, SequentialCheck

from .classes import CLASSES


@pytest.mark.parametrize(
    "check",
    [
        BoundedMeanCS(-1.0, 1.0, 0.1, BetGrid.geometric(0.1, 0.5, 3)).update_many([0.5, -1.0, 1.0]),
        PairedDifference(CLASSES, margin=0.03).update_many(["invoice", "other"], ["contract", "other"]),
        RateBelow(max_rate=0.1).update_many([1, 0, 0]),
        PairedAccuracy(margin=0.05).update_many([1, 0, 1], [1, 1, 0]),
    ],
    ids=lambda check: type(check).__name__,
)
def test_checkpoints_round_trip_through_json(check: object) -> None:
    data = json.loads(json.dumps(encode(check)))
    restored = decode(data, type(check))
    assert restored == check
    assert encode(restored) == encode(check)
    # a copy goes its own way
    copy = clone(check)
    assert copy == check
    copy._state.sums.n[...] += 1  # type: ignore[attr-defined]
    assert copy != check


def test_a_stored_check_is_checked_like_a_new_one() -> None:
    # settings first, in the constructor's order, then alpha, bets and the sums
    assert list(encode(PairedDifference(CLASSES))) == ["classes", "margin", "alpha", "bets", "_state"]
    assert list(encode(RateBelow())) == ["max_rate", "alpha", "bets", "_state"]
    with pytest.raises(ValidationError, match="alpha"):
        decode({**encode(RateBelow()), "alpha": 1.5}, RateBelow)
    with pytest.raises(ValidationError, match="max_rate"):
        decode({**encode(RateBelow()), "max_rate": 0.0}, RateBelow)


def test_merge_adds_the_states_of_checks_with_the_same_settings() -> None:
    one = PairedDifference(CLASSES).update_many(["invoice"], ["other"])
    other = PairedDifference(CLASSES).update_many(["other", "other"], ["other", "contract"])
    both = PairedDifference(CLASSES).update_many(["invoice", "other", "other"], ["other", "other", "contract"])
    merged = one.merge(other)
    expected = (3, {"invoice": 1 / 3, "contract": -1 / 3, "other": 0.0})
    assert (merged.n, merged.estimates) == (both.n, both.estimates) == expected
    assert RateBelow().update(1).merge(RateBelow().update(0)).n == 2


@pytest.mark.parametrize(
    ("one", "other", "message"),
    [
        (PairedDifference(CLASSES), PairedDifference(CLASSES, margin=0.02), "same classes, margin, alpha and bets"),
        (RateBelow(0.2), RateBelow(0.3), "same max_rate, alpha and bets"),
        (PairedAccuracy(alpha=0.05), PairedAccuracy(alpha=0.1), "same margin, alpha and bets"),
    ],
)
def test_merge_refuses_other_settings(one: SequentialCheck, other: SequentialCheck, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        one.merge(other)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: BoundedMeanCS(1.0, 1.0), "lo < hi"),
        (lambda: BoundedMeanCS(alpha=1.0), "alpha"),
        (lambda: BetGrid((0.5, 1.0), (0.5, 0.5)), r"\(0, 1\)"),
        (lambda: BoundedMeanCS().merge(BoundedMeanCS(alpha=0.1)), "same alpha"),
        (lambda: RateBelow(alpha=1.5), "alpha"),
    ],
)
def test_misuse_of_the_shared_parts_is_refused_with_a_clear_message(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


@pytest.mark.parametrize("name", ["base", "paired_difference", "rate_below", "paired_accuracy"])
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(f"monitor.core.stats.sequential.{name}")
    outcome = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert outcome.attempted > 0
    assert outcome.failed == 0
