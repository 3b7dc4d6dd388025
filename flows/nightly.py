"""The scheduled benchmark: a request file re-run on a cron, cache refreshed so drift in API models shows."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from prefect.states import State

from benchgate.run.validation import load_request
from benchgate.store import Store
from flows.benchmark import benchmark
from flows.json_flow import json_flow
from flows.states import final_state
from tasks.history import publish_trend


@json_flow(name="benchmark", flow_run_name="nightly · {request_path}", persist_result=False)
async def benchmark_file(
    request_path: str, cache: str = "refresh", store_url: str | None = None, trend_runs: int = 5
) -> State[Any]:
    """Runs the benchmark body in this flow run (no second run in the UI), then adds the trend.

    `cache: refresh` asks every model again: a hosted model that changed behind the same name is
    only caught by fresh generations. The request path is relative to the deployment's working directory.
    """
    request = load_request(request_path).model_copy(update={"cache": cache})
    out_dir = Path(tempfile.mkdtemp(prefix="benchgate-nightly-"))
    result = await benchmark.fn(request.model_dump(mode="json"), out_dir=str(out_dir), store_url=store_url)
    if result["report"]["status"] == "completed":
        result["drops"] = await publish_trend(result["report"], Store(store_url), out_dir, last=trend_runs)
    return final_state(result)
