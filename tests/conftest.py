"""Session-wide fixtures: the full-size test data, a real Prefect server, and the benchgate CLI run as a
subprocess against it.

Full-size data (tests/support/test_data.py): `data_file("squad_v2/dev-v2.0.json")` gives a checked path,
from `BENCHGATE_TEST_DATA` (default ../shared/data beside the repository), the cache, or its public source.
When a file can be had from nowhere, what happens depends on where the suite runs:

- with CI=true the test fails: CI is where parity is proven, so it must have the data, and a green CI run
  that skipped parity would claim what it did not check;
- elsewhere (a fresh clone, a laptop offline) the test is skipped with the reason (file, what was tried)
  and the end of the run lists every test that could not run and why, while everything else still runs.

A copy whose sha256 differs from tests/reference/manifest.json fails the test everywhere.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from tests.support.prefect_server import PrefectServer
from tests.support.test_data import (
    UNAVAILABLE,
    ChecksumMismatch,
    DataFile,
    DataLocator,
    DataUnavailable,
    in_ci,
    unavailable_summary,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@pytest.fixture(scope="session")
def data_locator() -> DataLocator:
    return DataLocator.from_environment()


@pytest.fixture(scope="session")
def data_file(data_locator: DataLocator) -> DataFile:
    """Path of a manifest file, checked; fails or skips the calling test as the module docstring says."""

    def locate(relpath: str) -> Path:
        try:
            return data_locator.locate(relpath)
        except ChecksumMismatch as error:
            pytest.fail(str(error), pytrace=False)
        except DataUnavailable as error:
            if in_ci():
                pytest.fail(f"{UNAVAILABLE}: {error} (CI=true: CI must have the data)", pytrace=False)
            pytest.skip(f"{UNAVAILABLE}: {error}")

    return locate


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    reports = [r for kind in ("skipped", "failed", "error") for r in terminalreporter.stats.get(kind, [])]
    lines = unavailable_summary(reports)
    if lines:
        terminalreporter.section("test data", sep="=", yellow=True)
        for line in lines:
            terminalreporter.write_line(line)


@contextmanager
def _across_workers(
    tmp_path_factory: pytest.TempPathFactory, name: str, operation: int
) -> Iterator[IO[str] | None]:
    """`flock(operation)` on a lock file in the xdist run's shared temporary directory, yielding its
    handle; nothing in one process, where tests run one at a time anyway."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        yield None
        return
    with (tmp_path_factory.getbasetemp().parent / name).open("a") as handle:
        fcntl.flock(handle, operation)
        try:
            yield handle
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class Machine:
    """The machine lock a test holds: exclusively for a test marked `alone`, else shared."""

    handle: IO[str] | None

    def share(self) -> None:
        """An `alone` test past its timed part lets the other worker's tests run beside the rest (its
        comparison runs, its assertions) instead of holding a core idle."""
        if self.handle is not None:
            fcntl.flock(self.handle, fcntl.LOCK_SH)


@pytest.fixture(autouse=True)
def machine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Machine]:
    """Tests marked `alone` have the machine to themselves: they assert that processes started by
    Prefect workers overlapped in time, which the other xdist worker's load could stagger (CI saw two
    lanes 10 s apart). They take this lock exclusively; every other test takes it shared."""
    operation = fcntl.LOCK_EX if request.node.get_closest_marker("alone") is not None else fcntl.LOCK_SH
    with _across_workers(tmp_path_factory, "machine.lock", operation) as handle:
        yield Machine(handle)


@pytest.fixture
def serial_with_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The tests that ask for this run one at a time across xdist workers."""
    with _across_workers(tmp_path_factory, "serial-with-workers.lock", fcntl.LOCK_EX):
        yield


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The one-at-a-time tests first: with `--dist worksteal` they then fall to one worker, which takes
    them in turn while the other runs the rest, instead of both waiting on the lock near the end."""
    items.sort(
        key=lambda item: (
            item.get_closest_marker("alone") is None
            and "serial_with_workers" not in getattr(item, "fixturenames", ())
        )
    )


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """A green run must have an outcome for every test it collected: a test that never ran must not
    pass for one that did (xdist's node-id schedulers ran one of schemathesis's four same-id tests)."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or session.exitstatus != 0 or session.config.option.collectonly:
        return
    if hasattr(session.config, "workerinput"):  # an xdist worker: the controller counts
        return
    outcomes = sum(len(reporter.stats.get(kind, [])) for kind in ("passed", "skipped", "xfailed", "xpassed"))
    if outcomes < session.testscollected:
        reporter.write_line(
            f"{session.testscollected} tests collected but only {outcomes} outcomes reported", red=True
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    server = PrefectServer(tmp_path_factory.mktemp("prefect-home")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def prefect_server_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A second server on a throwaway PostgreSQL cluster (tests/support/postgres.py), for the work pool."""
    from tests.support.postgres import Postgres

    database = Postgres().start()
    try:
        server = PrefectServer(tmp_path_factory.mktemp("prefect-home-pg"), database.url).start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        database.stop()


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
