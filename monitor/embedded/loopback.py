"""Server processes on loopback that the demo and the tests start and stop themselves.

The embedded broker, the Elasticsearch-compatible server, Prometheus and Alertmanager
share one life cycle: a command line, output appended to a log file, a wait until the
server answers (or a clear error with the end of its log), SIGTERM and then SIGKILL after
a grace period, and a finalizer so that a forgotten server does not outlive the
interpreter. Each is a subclass saying how it starts and when it is ready.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
import weakref
from pathlib import Path
from types import TracebackType
from typing import Self

from monitor.errors import DriftgateError

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
LOG_TAIL_BYTES = 2000


def free_port(host: str = HOST) -> int:
    """Return a TCP port on ``host`` that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def accepts_connections(port: int) -> bool:
    """Whether something listens on 127.0.0.1:``port``."""
    try:
        with socket.create_connection((HOST, port), timeout=0.2):
            return True
    except OSError:
        return False


class LoopbackProcess:
    """A server process on 127.0.0.1, started and stopped by this object.

    ``port=0`` picks a free port at the first start; later starts reuse it, so clients
    can reconnect to the same address after a restart.
    """

    name = "server"
    # A server that starts children of its own runs in a process group, signalled whole.
    process_group = False
    poll_interval_s = 0.05

    def __init__(self, port: int = 0, start_timeout_s: float = 30.0, stop_grace_s: float = 10.0) -> None:
        self._port = port
        self.start_timeout_s = start_timeout_s
        self.stop_grace_s = stop_grace_s
        self._process: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[[subprocess.Popen[bytes], bool], LoopbackProcess] | None = None

    @property
    def port(self) -> int:
        """The TCP port; 0 until the first start when none was given."""
        return self._port

    @property
    def log_path(self) -> Path:
        """The file the server's output is appended to."""
        raise NotImplementedError

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._process is not None and self._process.poll() is None

    def command(self) -> list[str]:
        """The command line (anything it reads written first); the port is chosen and the log's
        directory made by then."""
        raise NotImplementedError

    def answers(self) -> bool:
        """Whether the server is ready for its clients."""
        raise NotImplementedError

    def start(self) -> Self:
        """Start the server and return once it answers; DriftgateError, with the end of its log,
        when it cannot start, exits, or does not answer within ``start_timeout_s``."""
        if self.running:
            return self
        self._port = self._port or free_port()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = self.command()
        with self.log_path.open("ab") as output:
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                start_new_session=self.process_group,
            )
        self._finalizer = weakref.finalize(self, _kill, self._process, self.process_group)
        self._wait_until_answering()
        log.info(f"{self.name} started", extra={"port": self._port, "log": str(self.log_path)})
        return self

    def stop(self) -> None:
        """Stop the server: SIGTERM, then SIGKILL if it has not exited after ``stop_grace_s``."""
        process, self._process = self._process, None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if process is None:
            return
        if process.poll() is None:
            _signal(process, signal.SIGTERM, self.process_group)
            try:
                process.wait(self.stop_grace_s)
            except subprocess.TimeoutExpired:
                _kill(process, self.process_group)
        self.stopped()
        log.info(f"{self.name} stopped", extra={"port": self._port, "returncode": process.returncode})

    def stopped(self) -> None:
        """What to wait for once the process has exited (nothing by default)."""

    def log_tail(self, size: int = LOG_TAIL_BYTES) -> str:
        """The last ``size`` bytes of the server's log, as text."""
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(0, os.SEEK_END)
                handle.seek(max(0, handle.tell() - size))
                return handle.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def _wait_until_answering(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            process = self._process
            assert process is not None
            if process.poll() is not None:
                self._process = None
                raise DriftgateError(
                    f"{self.name} exited with code {process.returncode} at start; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            if self.answers():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise DriftgateError(
                    f"{self.name} did not answer on port {self._port} within {self.start_timeout_s:g} s; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(self.poll_interval_s)


def _signal(process: subprocess.Popen[bytes], sig: signal.Signals, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        if group:
            os.killpg(process.pid, sig)
        else:
            process.send_signal(sig)


def _kill(process: subprocess.Popen[bytes], group: bool) -> None:
    if group or process.poll() is None:
        _signal(process, signal.SIGKILL, group)
    with contextlib.suppress(ChildProcessError):
        process.wait()
