"""`driftgate demo` as a user runs it, briefly: broker, sidecar and traffic, ending with a verdict."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(("scenario", "verdict"), [("collapse", "no_go"), ("good", "go")])
def test_demo_reaches_the_scenarios_verdict(scenario: str, verdict: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "demo", "--scenario", scenario, "--rate", "800", "--port", "0",
         "--duration", "25"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"last verdict: {verdict}" in result.stderr
    # Not a terminal: one line per verdict change, and where the API is.
    assert "API http://127.0.0.1:" in result.stdout
    assert f"{verdict}:" in result.stdout


def test_demo_with_elasticsearch_says_where_and_indexes_verdicts_and_cases() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "demo", "--scenario", "collapse", "--rate", "800", "--port", "0",
         "--duration", "15", "--with-elasticsearch"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Elasticsearch http://127.0.0.1:" in result.stdout
    summary = next(line for line in result.stdout.splitlines() if line.startswith("Elasticsearch documents indexed"))
    indexed = dict(part.split() for part in summary.split(": ", 1)[1].split(", "))
    assert int(indexed["verdict"]) >= 1 and int(indexed["spotcheck"]) > 0, summary
