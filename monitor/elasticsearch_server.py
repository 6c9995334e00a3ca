"""An Elasticsearch-compatible server on loopback (``noida-db``) for the demo and tests.

``noida-db start --only elasticsearch`` answers as Elasticsearch 8.15 to the official
client and keeps its data in ``data_dir``, saved when it stops, so a restart with the
same directory finds its indices again. Users point the sink at their own cluster.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path
from types import TracebackType

import httpx

from monitor.broker import HOST, free_port
from monitor.errors import DriftgateError

log = logging.getLogger(__name__)


class EmbeddedElasticsearch:
    """A ``noida-db`` process serving only its Elasticsearch API on 127.0.0.1.

    ``port=0`` picks a free port at the first start; later starts reuse it and the same
    data directory, so a restart looks to clients like the cluster coming back.
    """

    def __init__(
        self,
        port: int = 0,
        data_dir: str | Path | None = None,
        start_timeout_s: float = 30.0,
        stop_grace_s: float = 10.0,
    ) -> None:
        self._port = port
        self.data_dir = Path(data_dir) if data_dir is not None else Path(tempfile.mkdtemp(prefix="driftgate-es-"))
        self.start_timeout_s = start_timeout_s
        self.stop_grace_s = stop_grace_s
        self._process: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[[subprocess.Popen[bytes]], EmbeddedElasticsearch] | None = None

    @property
    def url(self) -> str:
        if not self._port:
            raise DriftgateError("the Elasticsearch-compatible server has no port yet: start it first")
        return f"http://{HOST}:{self._port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> EmbeddedElasticsearch:
        """Start the server and return once it answers ``GET /``; DriftgateError (with its log) if not."""
        if self.running:
            return self
        if not self._port:
            self._port = free_port()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [_resolve_binary(), "start", "--only", "elasticsearch", "--host", HOST,
                   "--elasticsearch-port", str(self._port), "--data-dir", str(self.data_dir)]
        with self.log_path.open("ab") as output:
            # Its own process group: the command starts a child server, and both must stop together.
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._finalizer = weakref.finalize(self, _kill_group, self._process)
        self._wait_until_answering()
        log.info("Elasticsearch-compatible server started", extra={"url": self.url, "data_dir": str(self.data_dir)})
        return self

    def stop(self) -> None:
        """Stop it gracefully (it saves its data), killing it after the grace period."""
        process = self._process
        if process is None:
            return
        self._process = None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if process.poll() is None:
            _signal_group(process, signal.SIGTERM)
            try:
                process.wait(self.stop_grace_s)
            except subprocess.TimeoutExpired:
                _kill_group(process)
        # The child server of the group may outlive the command for a moment: wait until the port is free.
        deadline = time.monotonic() + self.stop_grace_s
        while self._answers() and time.monotonic() < deadline:
            time.sleep(0.05)

    def __enter__(self) -> EmbeddedElasticsearch:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def _answers(self) -> bool:
        try:
            return httpx.get(f"http://{HOST}:{self._port}/", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    def _wait_until_answering(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while not self._answers():
            process = self._process
            assert process is not None
            if process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise DriftgateError(
                    f"the Elasticsearch-compatible server did not answer on port {self._port}; "
                    f"log {self.log_path}:\n{tail}"
                )
            time.sleep(0.05)


def _resolve_binary() -> str:
    beside = Path(sys.executable).parent / "noida-db"
    found = str(beside) if beside.exists() else shutil.which("noida-db")
    if found is None:
        raise DriftgateError("the Elasticsearch-compatible server needs the noida-db package: pip install noida-db")
    return found


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(process.pid, sig)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    _signal_group(process, signal.SIGKILL)
    if process.poll() is None:
        process.wait()
