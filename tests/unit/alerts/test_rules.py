"""The shipped alerting rules and Alertmanager routes, checked by Prometheus' own tools.

``promtool check rules`` and ``promtool test rules`` (the unit tests beside the rules in
alerts/tests/), ``amtool check-config`` and ``amtool config routes test`` for where each
alert goes. Also: every rule has a severity, a description and a runbook section that exists.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.embedded.prometheus import INSTALL_HINT

ROOT = Path(__file__).resolve().parents[3]
ALERTS = ROOT / "alerts"
RULE_FILES = sorted(ALERTS.glob("*.rules.yml"))
RULE_TESTS = sorted((ALERTS / "tests").glob("*.yml"))
ALERTMANAGER = ALERTS / "alertmanager.yml"
RUNBOOKS = ROOT / "docs" / "runbooks.md"


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (`make prometheus` or {INSTALL_HINT})")
    return found


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT)


def rules() -> list[dict[str, Any]]:
    return [rule for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"]]


def test_promtool_check_rules() -> None:
    result = run(tool("promtool"), "check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    assert RULE_TESTS
    result = run(tool("promtool"), "test", "rules", *map(str, RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_rule_is_unit_tested_firing_and_quiet() -> None:
    """Each alert appears in the promtool tests with expected alerts and with none."""
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in rules()}
    assert names - firing == set(), "rules never tested firing"
    assert names - quiet == set(), "rules never tested quiet"


def test_a_broken_rule_fails_its_unit_test(tmp_path: Path) -> None:
    """The unit tests can fail: a no-go rule that never fires is caught."""
    promtool = tool("promtool")
    source = RULE_FILES[0].read_text()
    broken = source.replace('driftgate_verdict{verdict="no_go"}) == 1', 'driftgate_verdict{verdict="no_go"}) == 2')
    assert broken != source
    (tmp_path / "tests").mkdir()
    (tmp_path / RULE_FILES[0].name).write_text(broken)
    for test in RULE_TESTS:
        (tmp_path / "tests" / test.name).write_text(test.read_text())
    result = run(promtool, "test", "rules", *(str(tmp_path / "tests" / t.name) for t in RULE_TESTS))
    assert result.returncode != 0
    assert "DriftgateNoGo" in result.stdout + result.stderr


def test_every_rule_has_severity_description_and_an_existing_runbook_section() -> None:
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in RUNBOOKS.read_text().splitlines() if line.startswith("#")
    }
    for rule in rules():
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        page, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert page == "docs/runbooks.md", rule["alert"]
        assert anchor in anchors, f"{rule['alert']}: no section #{anchor} in docs/runbooks.md"


def test_amtool_accepts_the_alertmanager_config() -> None:
    result = run(tool("amtool"), "check-config", str(ALERTMANAGER))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (["alertname=DriftgateNoGo", "deployment=doc-classifier", "severity=critical"], "deploy-gate,team-channel"),
        (["alertname=DriftgatePrecisionDrop", "deployment=doc-classifier", "severity=warning"], "team-channel"),
        (["alertname=DriftgateSidecarDown", "job=driftgate", "severity=critical"], "team-channel"),
        (["alertname=DriftgateConsumerLag", "deployment=doc-classifier", "severity=warning"], "team-channel"),
    ],
)
def test_routes_send_the_no_go_to_the_deploy_gate_and_the_rest_to_the_team(
    labels: list[str], receivers: str
) -> None:
    result = run(tool("amtool"), "config", "routes", "test", f"--config.file={ALERTMANAGER}",
                 f"--verify.receivers={receivers}", *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receivers
