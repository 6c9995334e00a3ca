"""The API served from a background thread, on a free loopback port unless one is set: for the demo and tests."""

from __future__ import annotations

import asyncio
import threading
import time

from monitor.config import Settings
from monitor.embedded.loopback import free_port
from monitor.server import ApiServer, uvicorn_config
from monitor.sidecar.service import Sidecar


class ApiThread:
    """The API served from a background thread (for the demo and tests)."""

    def __init__(self, settings: Settings, sidecar: Sidecar, port: int | None = None) -> None:
        self.port = port or (settings.api.port or free_port(settings.api.host))
        self.host = settings.api.host
        self.server = ApiServer(uvicorn_config(settings, sidecar, self.port))
        # uvicorn installs signal handlers only from the main thread, so the owner keeps them.
        self.thread = threading.Thread(target=self._serve, name="driftgate-api", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _serve(self) -> None:
        asyncio.run(self.server.serve())

    def start(self, timeout_s: float = 10.0) -> ApiThread:
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"the API did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
