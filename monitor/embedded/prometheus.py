"""Prometheus and Alertmanager processes on loopback, for the demo and the tests.

Both come from Debian's packages (``prometheus``, ``prometheus-alertmanager``); neither
starts by itself after installation. Each server here gets its own directory for its
config, data and log, listens on 127.0.0.1 only, and is stopped by its owner. Users run
their own Prometheus with ``alerts/driftgate.rules.yml`` and ``alerts/alertmanager.yml``.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

from monitor.embedded.loopback import HOST, LoopbackProcess, free_port
from monitor.errors import DriftgateError

log = logging.getLogger(__name__)

ALERTS_DIR = Path(__file__).resolve().parents[2] / "alerts"
PROMETHEUS_BINARIES = ("prometheus",)
# Debian names the Alertmanager binary after its package; upstream calls it alertmanager.
ALERTMANAGER_BINARIES = ("prometheus-alertmanager", "alertmanager")
INSTALL_HINT = "apt-get install prometheus prometheus-alertmanager"


def find_binary(names: Sequence[str]) -> str:
    """The path of the first of ``names`` on PATH; DriftgateError saying how to install it otherwise."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise DriftgateError(f"{' or '.join(names)} is not installed ({INSTALL_HINT})")


def rule_files(directory: Path = ALERTS_DIR) -> list[Path]:
    """driftgate's rule files (``*.rules.yml``) in ``directory``."""
    files = sorted(directory.glob("*.rules.yml"))
    if not files:
        raise DriftgateError(f"no *.rules.yml files in {directory}")
    return files


class LoopbackServer(LoopbackProcess):
    """A Prometheus-family server on 127.0.0.1 with its config, data and log in ``directory``."""

    def __init__(self, directory: Path, port: int = 0, start_timeout_s: float = 30.0) -> None:
        super().__init__(port, start_timeout_s, stop_grace_s=10.0)
        self.directory = directory

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._port}"

    @property
    def log_path(self) -> Path:
        return self.directory / f"{self.name}.log"

    def answers(self) -> bool:
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False


class PrometheusServer(LoopbackServer):
    """Prometheus scraping ``targets`` (job ``driftgate``), evaluating ``rules``, alerting ``alertmanagers``."""

    name = "prometheus"

    def __init__(
        self,
        directory: Path,
        targets: Sequence[str],
        rules: Sequence[Path] = (),
        alertmanagers: Sequence[str] = (),
        interval_s: float = 5.0,
        port: int = 0,
        binary: str | None = None,
    ) -> None:
        super().__init__(directory, port)
        self.targets = list(targets)
        self.rules = [Path(r).resolve() for r in rules]
        self.alertmanagers = list(alertmanagers)
        self.interval_s = interval_s
        self.binary = binary

    def config(self) -> dict[str, Any]:
        """prometheus.yml: one scrape job, the rule files, the Alertmanagers."""
        interval = f"{int(self.interval_s * 1000)}ms"
        config: dict[str, Any] = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval,
                       "scrape_timeout": f"{int(min(self.interval_s, 10.0) * 1000)}ms"},
            "rule_files": [str(path) for path in self.rules],
            "scrape_configs": [{"job_name": "driftgate", "static_configs": [{"targets": self.targets}]}],
        }
        if self.alertmanagers:
            config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": self.alertmanagers}]}]}
        return config

    def command(self) -> list[str]:
        config_path = self.directory / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        return [
            self.binary or find_binary(PROMETHEUS_BINARIES),
            f"--config.file={config_path}",
            f"--storage.tsdb.path={self.directory / 'data'}",
            f"--web.listen-address={HOST}:{self.port}",
        ]

    def query(self, expr: str, timeout_s: float = 10.0) -> list[dict[str, Any]]:
        """The result of an instant query; DriftgateError when Prometheus refuses the expression."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=timeout_s)
        body = response.json()
        if body.get("status") != "success":
            raise DriftgateError(f"Prometheus refused {expr!r}: {body.get('errorType')}: {body.get('error')}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts Prometheus holds now (pending and firing)."""
        body = httpx.get(f"{self.url}/api/v1/alerts", timeout=10).json()
        alerts: list[dict[str, Any]] = body["data"]["alerts"]
        return alerts


class AlertmanagerServer(LoopbackServer):
    """Alertmanager with the given config (a dict, written to the server's directory), without clustering."""

    name = "alertmanager"

    def __init__(self, directory: Path, config: dict[str, Any], port: int = 0, binary: str | None = None) -> None:
        super().__init__(directory, port)
        self.config = config
        self.binary = binary

    @property
    def address(self) -> str:
        """``host:port``, as Prometheus' alerting config wants it."""
        return f"{HOST}:{self.port}"

    def reserve_port(self) -> AlertmanagerServer:
        """Pick the port before start, so Prometheus can be configured first."""
        self._port = self._port or free_port()
        return self

    def command(self) -> list[str]:
        config_path = self.directory / "alertmanager.yml"
        config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        return [
            self.binary or find_binary(ALERTMANAGER_BINARIES),
            f"--config.file={config_path}",
            f"--storage.path={self.directory / 'data'}",
            f"--web.listen-address={HOST}:{self.port}",
            "--cluster.listen-address=",  # empty: a single instance, no gossip port
        ]

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts Alertmanager holds now."""
        alerts: list[dict[str, Any]] = httpx.get(f"{self.url}/api/v2/alerts", timeout=10).json()
        return alerts


def load_alertmanager_config(path: Path = ALERTS_DIR / "alertmanager.yml") -> dict[str, Any]:
    """The shipped Alertmanager config as a dict."""
    config: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return config


def with_local_receivers(config: dict[str, Any], urls: dict[str, str | None]) -> dict[str, Any]:
    """``config`` with each named receiver replaced: a webhook to ``urls[name]``, or none (``None``).

    The routes stay as shipped; only where the notifications go changes. A receiver with no
    integration is Alertmanager's way of accepting alerts and sending them nowhere.
    """
    receivers = []
    for receiver in config["receivers"]:
        name = receiver["name"]
        if name not in urls:
            receivers.append(receiver)
            continue
        url = urls[name]
        receivers.append({"name": name} if url is None else {
            "name": name, "webhook_configs": [{"url": url, "send_resolved": True}]
        })
    return {**config, "receivers": receivers}


class MonitoringStack:
    """Alertmanager and Prometheus with driftgate's rules, watching one sidecar: what the demo starts.

    The shipped routes are kept; their receivers send nowhere (the demo stays on this
    machine), so alerts are seen in Prometheus' and Alertmanager's own pages.
    """

    def __init__(self, target: str, directory: Path | None = None, interval_s: float = 5.0) -> None:
        self.target = target
        self.interval_s = interval_s
        self._own_directory = directory is None
        self.directory = directory or Path(tempfile.mkdtemp(prefix="driftgate-prometheus-"))
        self.alertmanager: AlertmanagerServer | None = None
        self.prometheus: PrometheusServer | None = None

    def start(self) -> MonitoringStack:
        """Start Alertmanager, then Prometheus pointed at it; DriftgateError (nothing left running) on failure."""
        config = load_alertmanager_config()
        silent = with_local_receivers(config, {receiver["name"]: None for receiver in config["receivers"]})
        try:
            self.alertmanager = AlertmanagerServer(self.directory / "alertmanager", silent)
            self.alertmanager.start()
            self.prometheus = PrometheusServer(
                self.directory / "prometheus", [self.target], rule_files(), [self.alertmanager.address],
                self.interval_s,
            )
            self.prometheus.start()
        except DriftgateError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for server in (self.prometheus, self.alertmanager):
            if server is not None:
                server.stop()
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)
