"""An Elasticsearch-compatible server on loopback (``noida-db``) for the demo and tests.

``noida-db start --only elasticsearch`` answers as Elasticsearch 8.15 to the official
client and keeps its data in ``data_dir``, saved when it stops, so a restart with the
same directory finds its indices again. Users point the sink at their own cluster.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx

from monitor.embedded.loopback import HOST, LoopbackProcess
from monitor.errors import DriftgateError


class EmbeddedElasticsearch(LoopbackProcess):
    """A ``noida-db`` process serving only its Elasticsearch API on 127.0.0.1.

    ``port=0`` picks a free port at the first start; later starts reuse it and the same
    data directory, so a restart looks to clients like the cluster coming back.
    """

    name = "the Elasticsearch-compatible server"
    # The command starts a child server: both must stop together.
    process_group = True

    def __init__(
        self,
        port: int = 0,
        data_dir: str | Path | None = None,
        start_timeout_s: float = 30.0,
        stop_grace_s: float = 10.0,
    ) -> None:
        super().__init__(port, start_timeout_s, stop_grace_s)
        self.data_dir = Path(data_dir) if data_dir is not None else Path(tempfile.mkdtemp(prefix="driftgate-es-"))

    @property
    def url(self) -> str:
        if not self._port:
            raise DriftgateError("the Elasticsearch-compatible server has no port yet: start it first")
        return f"http://{HOST}:{self._port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    def command(self) -> list[str]:
        return [_resolve_binary(), "start", "--only", "elasticsearch", "--host", HOST,
                "--elasticsearch-port", str(self._port), "--data-dir", str(self.data_dir)]

    def answers(self) -> bool:
        try:
            return httpx.get(f"http://{HOST}:{self._port}/", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    def stopped(self) -> None:
        # The child server of the group may outlive the command for a moment: wait until the port is free.
        deadline = time.monotonic() + self.stop_grace_s
        while self.answers() and time.monotonic() < deadline:
            time.sleep(0.05)


def _resolve_binary() -> str:
    beside = Path(sys.executable).parent / "noida-db"
    found = str(beside) if beside.exists() else shutil.which("noida-db")
    if found is None:
        raise DriftgateError("the Elasticsearch-compatible server needs the noida-db package: pip install noida-db")
    return found
