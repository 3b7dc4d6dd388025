"""`benchgate api` as a real uvicorn process on 127.0.0.1, for tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.prefect_server import PrefectServer, free_port
from tests.support.prefect_workers import REPO_ROOT, wait_for
from tests.support.processes import stop_group

TOKEN = "test-token-3f9a1c"


class ApiServer:
    def __init__(
        self, server: PrefectServer, store: Path, log: Path, *extra_args: str, **extra_env: str
    ) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        self.env = {
            **os.environ,
            **server.env(),
            "BENCHGATE_STORE": str(store),
            "BENCHGATE_API_TOKEN": TOKEN,
            **extra_env,
        }
        port = self.url.rsplit(":", 1)[1]
        with log.open("wb") as handle:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "benchgate", "api", "--port", port, *extra_args],
                env=self.env,
                cwd=REPO_ROOT,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.log = log
        wait_for(self._healthy, 60, f"benchgate api at {self.url}")

    def _healthy(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(
                f"benchgate api exited {self.process.returncode}:\n{self.log.read_text()[-3000:]}"
            )
        try:
            return httpx.get(f"{self.url}/v1/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def stop(self) -> None:
        """The group too: the process pool's children must not outlive the test."""
        stop_group(self.process)
