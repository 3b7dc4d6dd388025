"""The `model.released` run: the released model against the template's production model, gated."""

from __future__ import annotations

import tempfile
from typing import Any

from prefect.states import State

from benchgate.run.release import load_template, release_request
from flows.benchmark import benchmark
from flows.json_flow import json_flow
from flows.states import final_state


@json_flow(name="benchmark", flow_run_name="release · {model[id]}", persist_result=False)
async def benchmark_release(
    template_path: str, model: dict[str, Any], store_url: str | None = None
) -> State[Any]:
    """`model` is the event's payload (id, provider, model, base_url, ...), passed whole by the trigger.

    A candidate that fails the gate ends the run Failed (reports written), which automations act on.
    """
    request = release_request(load_template(template_path), model)
    out_dir = tempfile.mkdtemp(prefix="benchgate-release-")
    result = await benchmark.fn(request.model_dump(mode="json"), out_dir=out_dir, store_url=store_url)
    return final_state(result)
