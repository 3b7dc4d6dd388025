"""Settings that come from the environment (BENCHGATE_*), after the request file.

One `BaseSettings` so every variable is declared, typed and documented in one place; read afresh on
each call because tests and long-lived servers change the environment.
"""

from __future__ import annotations

import os

from pydantic import PositiveFloat, PositiveInt, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_STORE = ".benchgate"


class Settings(BaseSettings):
    """`BENCHGATE_STORE`, `BENCHGATE_API_TOKEN`, ... (the field name, upper-cased, after the prefix)."""

    model_config = SettingsConfigDict(env_prefix="BENCHGATE_", extra="ignore")

    store: str = DEFAULT_STORE
    api_token: SecretStr | None = None
    api_url: str | None = None
    api_deployment: str | None = None
    evaluate_deployment: str = "evaluate/work-pool"
    policy: str | None = None  # the operator's policy file for requests (benchgate/run/policy.py)
    # evaluate subflows a benchmark runs at once: SQLite-backed Prefect servers answer "database is
    # locked" beyond a handful; on PostgreSQL set it to the models x tasks (docs/operations.md)
    max_concurrent_subflows: PositiveInt = 4
    # on an object store answers are journaled in batches (benchgate/store/journal.py): a SIGKILL loses
    # at most this many finished answers, or this many seconds of them (docs/operations.md)
    journal_batch_rows: PositiveInt = 16
    journal_batch_seconds: PositiveFloat = 2.0
    # a killed writer's chunks this old are folded into a Parquet part by the next writer to close
    journal_orphan_seconds: PositiveFloat = 600.0

    @property
    def token(self) -> str | None:
        """The API token, or None when unset or empty."""
        return self.api_token.get_secret_value() or None if self.api_token else None


def settings() -> Settings:
    return Settings()


def store_root() -> str:
    return settings().store


PREFECT_QUIET_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_LOGGING_LEVEL": "CRITICAL",
    "PREFECT_LOGGING_LOG_PRINTS": "true",
}


def quiet_prefect() -> None:
    """Before prefect is imported: no telemetry attempts (there may be no internet), a quiet local server."""
    for key, value in PREFECT_QUIET_DEFAULTS.items():
        os.environ.setdefault(key, value)
