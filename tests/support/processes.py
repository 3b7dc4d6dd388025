"""Stopping what tests start: the whole process group, politely first, then for sure."""

from __future__ import annotations

import os
import signal
import subprocess


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
