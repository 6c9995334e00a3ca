"""The command line in-process with Typer's runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.cli.app import app
from monitor.embedded.loopback import free_port

runner = CliRunner()


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("deployments:\n  - name: a\n    policy: {min_samples: many}\n", "deployments[0].policy.min_samples"),
        ("kafka: {start_from: yesterday}\ndeployments: [{name: a}]\n", "kafka.start_from"),
        ("deployments: [{name: a, colour: red}]\n", "deployments[0].colour"),
        ("kafka: {bootstrap_servers: x}\n", "deployments"),
        ("deployments: [{name: a}]\nverdict_interval_s: -1\n", "verdict_interval_s"),
    ],
)
def test_run_refuses_a_bad_config_with_exit_2_naming_the_key(tmp_path: Path, text: str, key: str) -> None:
    config = tmp_path / "driftgate.yaml"
    config.write_text(text)
    result = runner.invoke(app, ["run", "--config", str(config)])
    assert result.exit_code == 2
    assert key in result.output


def test_a_refusal_written_to_a_pipe_is_one_line(tmp_path: Path) -> None:
    value = "many, " * 30 + "far more than a terminal line holds"
    config = tmp_path / "driftgate.yaml"
    config.write_text(f"deployments:\n  - name: a\n    policy: {{min_samples: '{value}'}}\n")
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "run", "--config", str(config)],
        capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "80"},
    )
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("config refused: deployments[0].policy.min_samples: ")
    assert lines[0].endswith(f"(got {value!r})")


def test_run_refuses_a_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "--config", str(tmp_path / "absent.yaml")])
    assert result.exit_code == 2
    assert "cannot read config file" in result.output


def test_gate_exits_3_when_the_service_cannot_be_reached() -> None:
    port = free_port()  # nothing listens there
    result = runner.invoke(
        app, ["gate", "--url", f"http://127.0.0.1:{port}", "--deployment", "x", "--wait", "0s"]
    )
    assert result.exit_code == 3
    assert "cannot read the verdict" in result.output


def test_gate_refuses_a_bad_duration() -> None:
    result = runner.invoke(app, ["gate", "--url", "http://127.0.0.1:1", "--deployment", "x", "--wait", "soon"])
    assert result.exit_code == 3
    assert "--wait" in result.output


def test_demo_refuses_an_unknown_scenario() -> None:
    result = runner.invoke(app, ["demo", "--scenario", "chaos"])
    assert result.exit_code == 2
    assert "chaos" in result.output
