"""Work pools, `prefect deploy` and `prefect worker` processes against a test server, stopped firmly."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.support.prefect_server import PrefectServer
from tests.support.processes import stop_group

REPO_ROOT = Path(__file__).resolve().parents[2]
SUPPORT = REPO_ROOT / "examples" / "custom" / "support.jsonl"
T = TypeVar("T")
# Tests that start Prefect workers or time a model's limits: on two xdist workers they still run one at a
# time (tests/conftest.py:serial_with_workers), and first, so that they compete with at most one other
# test for the cores, as they were tuned for.
SERIAL_WITH_WORKERS = pytest.mark.usefixtures("serial_with_workers")


def support_tasks(letters: str, target: str, items: int) -> list[dict[str, Any]]:
    """One custom task per letter over the shipped support questions: several model x task units of one
    model, so a work-pool run has several processes calling it at once."""
    return [
        {
            "task": f"support-{letter}",
            "dataset": str(SUPPORT),
            "id_field": "id",
            "prompt": f"{letter}: {{{{ question }}}}",
            "target": target,
            "limit": items,
            "metrics": ["f1-score"],
        }
        for letter in letters
    ]


def prefect_cli(server: PrefectServer, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", *args],
        env={**os.environ, **server.env()},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, (
        f"prefect {' '.join(args)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


def ensure_pool(server: PrefectServer, pool: str) -> None:
    prefect_cli(server, "work-pool", "create", pool, "--type", "process", "--overwrite")


def deploy_worker_entry(server: PrefectServer, pool: str, deployment: str) -> None:
    """The pool, and `flows/remote.py:evaluate_on_worker` deployed on it as `deployment` (evaluate/NAME)."""
    ensure_pool(server, pool)
    prefect_cli(
        server,
        "deploy",
        "flows/remote.py:evaluate_on_worker",
        "--name",
        deployment.split("/")[1],
        "--pool",
        pool,
    )


class Worker:
    """`prefect worker start` in its own process group; it polls every second instead of every ten."""

    def __init__(
        self, server: PrefectServer, pool: str, name: str, store: Path, limit: int, log: Path
    ) -> None:
        env = {
            **os.environ,
            **server.env(),
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "BENCHGATE_STORE": str(store),
            "PREFECT_LOGGING_LEVEL": "INFO",
        }
        self.name = name
        self.log = log
        with log.open("wb") as handle:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "prefect",
                    "worker",
                    "start",
                    "--pool",
                    pool,
                    "--name",
                    name,
                    "--limit",
                    str(limit),
                ],
                env=env,
                cwd=REPO_ROOT,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_started(self, timeout: float = 90.0) -> None:
        """Until the worker polls its pool. A test that needs two workers at once must not start its
        run before: on a loaded machine a worker still starting leaves every flow run to the other
        (CI: two lanes sent one after the other, 2 s apart, instead of together)."""
        started = f"Worker '{self.name}' started!"
        wait_for(lambda: started in self.log.read_text(errors="replace"), timeout, f"worker {self.name}")

    def stop(self) -> None:
        """One SIGTERM is not enough for a Prefect worker: it can ignore it for over 30 s."""
        stop_group(self.process, term_wait=5)


def wait_for(check: Callable[[], T | None], timeout: float, what: str, poll: float = 0.2) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
