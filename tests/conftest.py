"""Session-wide fixtures: a real Prefect server, and the benchgate CLI run as a subprocess against it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.prefect_server import PrefectServer

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared reference data; its absence fails the test (parity must never be skipped silently)."""
    if not (SHARED_DATA / "SOURCES.md").is_file():
        pytest.fail(
            f"shared reference data not found at {SHARED_DATA} (expected ../shared/data beside the "
            f"repository root {REPO_ROOT}); the parity tests need it — restore it, do not skip them",
            pytrace=False,
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    server = PrefectServer(tmp_path_factory.mktemp("prefect-home")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def prefect_api(prefect_server: PrefectServer) -> Iterator[str]:
    """In-process flows in this test session talk to the session's server."""
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    with temporary_settings(
        updates={PREFECT_API_URL: prefect_server.api_url, PREFECT_HOME: prefect_server.home}
    ):
        yield prefect_server.api_url


def cli_env(server: PrefectServer, store: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, **server.env(), "BENCHGATE_STORE": str(store), **extra}


def run_cli(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchgate", *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
