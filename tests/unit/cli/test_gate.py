"""Tests of monitor.cli.gate's pure parts: durations and exit codes (docs/contract.md §5)."""

from __future__ import annotations

import pytest

from monitor.cli.gate import exit_code_for, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90.0),
        ("2.5", 2.5),
        ("90s", 90.0),
        ("5m", 5 * 60.0),
        ("1h", 3600.0),
        ("1h30m", 3600.0 + 30 * 60),
        ("1h0m15s", 3600.0 + 15),
        ("1.5m", 90.0),
        (" 5M ", 300.0),
        ("0", 0.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "   ", "5x", "m", "5 m", "5m3", "h1", "1d", "five minutes", "1:30"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("text", ["nan", "inf", "-5"])
def test_parse_duration_refuses_non_finite_and_negative(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("verdict", "code"),
    [("go", 0), ("no_go", 1), ("inconclusive", 2), ("pending", 2)],
)
def test_exit_code_for(verdict: str, code: int) -> None:
    assert exit_code_for(verdict) == code


def test_unknown_verdict_is_undecided() -> None:
    assert exit_code_for("maybe") == 2
