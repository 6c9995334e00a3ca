"""`driftgate demo` as a user runs it, briefly: broker, sidecar and traffic, ending with a verdict."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time

import httpx
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


def test_demo_with_prometheus_evaluates_the_rules_against_its_sidecar() -> None:
    """`--with-prometheus`: Prometheus scrapes the demo's sidecar and holds the no-go alert; Ctrl-C stops it all."""
    if shutil.which("prometheus") is None or shutil.which("prometheus-alertmanager") is None:
        pytest.skip("prometheus / prometheus-alertmanager not installed (`make prometheus`)")
    process = subprocess.Popen(
        [sys.executable, "-m", "monitor", "demo", "--scenario", "collapse", "--rate", "400", "--port", "0",
         "--duration", "120", "--with-prometheus"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        urls: list[str] = []
        for line in process.stdout:
            if line.startswith("Prometheus "):
                urls = re.findall(r"http://127\.0\.0\.1:\d+", line)
                break
        assert urls, "the demo did not print where Prometheus is"
        prometheus, alertmanager = urls[0], urls[-1]
        assert httpx.get(f"{alertmanager}/-/ready", timeout=5).status_code == 200
        deadline = time.monotonic() + 60
        held: list[object] = []
        while not held and time.monotonic() < deadline:
            answer = httpx.get(f"{prometheus}/api/v1/query", timeout=5,
                               params={"query": 'ALERTS{alertname="DriftgateNoGo", deployment="doc-classifier"}'})
            held = answer.json()["data"]["result"]
            time.sleep(1)
        assert held, "Prometheus never held the no-go alert for the collapsed canary"
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr[-2000:]
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{prometheus}/-/ready", timeout=2)


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
