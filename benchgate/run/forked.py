"""Processes a run forks from itself (its temporary Prefect server, its scoring worker).

A fork shares what the run has imported instead of importing it again in a fresh interpreter
(most of a second of CPU each), but it is only safe on Linux (macOS: system frameworks are not safe
to use in a forked child) and while no other thread runs (a thread's held lock would stay held in
the child forever).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading

PR_SET_PDEATHSIG = 1


def can_fork() -> bool:
    return sys.platform == "linux" and threading.active_count() == 1


def die_with_parent(parent: int) -> None:
    """In the child: a SIGKILLed run must not leave it behind."""
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the run died before prctl took effect
        os._exit(0)
