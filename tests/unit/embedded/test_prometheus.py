"""The Prometheus and Alertmanager process adapters: their configs, and their errors when they cannot start."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from monitor.embedded.prometheus import (
    AlertmanagerServer,
    PrometheusServer,
    find_binary,
    load_alertmanager_config,
    rule_files,
    with_local_receivers,
)
from monitor.errors import DriftgateError


def test_prometheus_config_scrapes_the_targets_with_the_rules_and_alertmanagers(tmp_path: Path) -> None:
    rules = rule_files()
    server = PrometheusServer(tmp_path, ["127.0.0.1:8080"], rules, ["127.0.0.1:9093"], interval_s=1.5)
    config = server.config()
    assert config["global"]["scrape_interval"] == config["global"]["evaluation_interval"] == "1500ms"
    assert config["rule_files"] == [str(path.resolve()) for path in rules]
    (job,) = config["scrape_configs"]
    assert job == {"job_name": "driftgate", "static_configs": [{"targets": ["127.0.0.1:8080"]}]}
    assert config["alerting"]["alertmanagers"] == [{"static_configs": [{"targets": ["127.0.0.1:9093"]}]}]
    assert "alerting" not in PrometheusServer(tmp_path, ["127.0.0.1:8080"]).config()


def test_local_receivers_keep_the_routes_and_replace_only_the_named_receivers() -> None:
    shipped = load_alertmanager_config()
    local = with_local_receivers(shipped, {"deploy-gate": "http://127.0.0.1:1/gate", "team-channel": None})
    assert local["route"] == shipped["route"]
    receivers = {r["name"]: r for r in local["receivers"]}
    assert receivers["deploy-gate"]["webhook_configs"] == [{"url": "http://127.0.0.1:1/gate", "send_resolved": True}]
    assert receivers["team-channel"] == {"name": "team-channel"}  # accepts alerts, sends nowhere
    untouched = with_local_receivers(shipped, {})
    assert untouched["receivers"] == shipped["receivers"]


def test_a_missing_binary_says_how_to_install_it() -> None:
    with pytest.raises(DriftgateError, match="apt-get install prometheus prometheus-alertmanager"):
        find_binary(("driftgate-no-such-prometheus",))


def test_rule_files_refuse_a_directory_without_rules(tmp_path: Path) -> None:
    with pytest.raises(DriftgateError, match=r"no \*\.rules\.yml files"):
        rule_files(tmp_path)


def test_a_server_that_exits_at_start_is_reported_with_its_log(tmp_path: Path) -> None:
    """The real Alertmanager given a route without a receiver refuses to start; its words reach the error."""
    if shutil.which("prometheus-alertmanager") is None:
        pytest.skip("prometheus-alertmanager is not installed (`make prometheus`)")
    server = AlertmanagerServer(tmp_path / "am", {"route": {"group_by": ["alertname"]}, "receivers": []})
    with pytest.raises(DriftgateError, match=r"(?s)alertmanager exited with code 1 at start.*receiver"):
        server.start()
    assert not server.running
