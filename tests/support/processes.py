"""Stopping what tests start: the whole process group, politely first, then for sure."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def stop_group(process: subprocess.Popen, term_wait: float = 10.0) -> None:
    """TERM the group, then KILL it: Prefect workers ignore one SIGTERM, pools leave children behind."""
    for sig, wait in ((signal.SIGTERM, term_wait), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return


def run_and_kill_when(
    request: Path, env: Mapping[str, str], reached: Callable[[], bool], timeout: float = 120
) -> None:
    """`benchgate run REQUEST`, SIGKILLed with its whole group once `reached()` (mid-generation)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "benchgate", "run", str(request)],
        env=dict(env),
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while not reached() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    assert process.poll() is None, "the run finished before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def fresh_interpreter(code: str) -> str:
    """What `code` prints in an interpreter of its own, whose imports are only its own."""
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout


def outputs(result: subprocess.CompletedProcess[str], keep: int = 3000) -> str:
    """A failed command's output for an assertion message: the end of stdout, and both ends of
    stderr, where a child process's traceback comes before the command's own."""
    err = result.stderr
    if len(err) > 2 * keep:
        err = f"{err[:keep]}\n[...]\n{err[-keep:]}"
    return f"{result.stdout[-keep:]}\n{err}"
