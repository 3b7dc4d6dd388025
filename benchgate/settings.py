"""Settings that come from the environment (BENCHGATE_*), after the request file."""

from __future__ import annotations

import os

DEFAULT_STORE = ".benchgate"


def store_root() -> str:
    return os.environ.get("BENCHGATE_STORE", DEFAULT_STORE)
