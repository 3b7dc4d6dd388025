"""Settings that come from the environment (BENCHGATE_*), after the request file."""

from __future__ import annotations

import os

DEFAULT_STORE = ".benchgate"


def store_root() -> str:
    return os.environ.get("BENCHGATE_STORE", DEFAULT_STORE)


PREFECT_QUIET_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_LOGGING_LEVEL": "CRITICAL",
    "PREFECT_LOGGING_LOG_PRINTS": "true",
}


def quiet_prefect() -> None:
    """Before prefect is imported: no telemetry attempts (there may be no internet), a quiet local server."""
    for key, value in PREFECT_QUIET_DEFAULTS.items():
        os.environ.setdefault(key, value)
