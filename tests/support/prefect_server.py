"""A real `prefect server start` on 127.0.0.1 with its own PREFECT_HOME, for tests and benchmarks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.processes import stop_group


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrefectServer:
    """`database_url`: PREFECT_API_DATABASE_CONNECTION_URL (default SQLite in `home`); `access_log`: a file
    for uvicorn's access log (one line per API request, how benchmarks count calls)."""

    def __init__(self, home: Path, database_url: str | None = None, access_log: Path | None = None) -> None:
        self.home = home
        self.database_url = database_url
        self.access_log = access_log
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.process: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        """What a client process needs to talk to this server and nothing else."""
        return {
            "PREFECT_HOME": str(self.home),
            "PREFECT_API_URL": self.api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING",
        }

    def start(self, timeout: float = 90.0) -> PrefectServer:
        level = "INFO" if self.access_log else "CRITICAL"
        env = {**os.environ, **self.env(), "PREFECT_SERVER_LOGGING_LEVEL": level}
        env.pop("PREFECT_API_URL")
        if self.database_url:
            env["PREFECT_API_DATABASE_CONNECTION_URL"] = self.database_url
        output = self.access_log.open("ab") if self.access_log else None
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "prefect",
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=env,
            stdout=output or subprocess.DEVNULL,
            stderr=output or subprocess.DEVNULL,
            start_new_session=True,
        )
        if output:
            output.close()  # the child holds its own descriptor
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prefect server exited with {self.process.returncode}")
            try:
                if httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"prefect server not healthy after {timeout} s")

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process, term_wait=15)
            self.process = None
