"""What can be attached to a running sidecar: the one protocol every sink meets.

An attachment is told of what the sidecar does (a verdict changed, disagreements were
picked for review, a batch was folded in), brings its own Prometheus collectors for
``/metrics``, and lives as long as the sidecar: started before it consumes, stopped after
its last verdicts, so those go out too. The sidecar calls nothing else on it, so a new sink
needs no new hook.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from prometheus_client.registry import Collector

from monitor.core.state.deployment import DeploymentState
from monitor.core.state.spotcheck import SpotcheckCase
from monitor.core.verdict import Verdict


class Attachment(Protocol):
    """A sink (or anything else) told of the sidecar's events; see the module docstring."""

    def notify(self, verdict: Verdict) -> None:
        """A verdict changed (from the thread evaluating verdicts: must not block)."""

    def add_cases(self, cases: list[SpotcheckCase]) -> None:
        """Disagreements were picked for review (from the consumer thread: must not block)."""

    def on_batch(self, states: Mapping[str, DeploymentState]) -> None:
        """A batch was folded into these states (under the sidecar's lock: must be quick, never block)."""

    def collectors(self) -> list[Collector]:
        """The attachment's own Prometheus collectors, served on /metrics beside the sidecar's."""

    def start(self) -> None:
        """Begin work (threads, connections); called by the sidecar before it consumes."""

    def stop(self, timeout_s: float) -> None:
        """Send what is left within ``timeout_s``; called after the sidecar's last verdicts."""
