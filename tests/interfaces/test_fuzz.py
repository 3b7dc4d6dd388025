"""Fuzz the API from its own OpenAPI schema: whatever arrives, never a 5xx."""

from __future__ import annotations

import tempfile
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from benchgate.interfaces.api import ApiSettings, create_app
from tests.interfaces.server import TOKEN


class RecordingRunner:
    """Starts nothing: a fuzzer that stumbles on a valid request must not launch benchmarks."""

    mode = "recording"

    def __init__(self) -> None:
        self.started: list[str] = []

    async def start(self, benchmark_id: str, request: dict[str, Any], store_url: str) -> dict[str, Any]:
        self.started.append(benchmark_id)
        return {}

    async def died(self, submission: dict[str, Any]) -> str | None:
        return None


STORE = tempfile.mkdtemp(prefix="benchgate-fuzz-")
app = create_app(ApiSettings(token=TOKEN, store_url=STORE, max_body_bytes=64 * 1024), RecordingRunner())
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_with_or_without_the_token(case: schemathesis.Case) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, checks=[not_a_server_error])
    case.call_and_validate(checks=[not_a_server_error])
