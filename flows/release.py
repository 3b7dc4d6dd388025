"""The `model.released` run: the released model against the template's production model, gated."""

from __future__ import annotations

import tempfile
from typing import Any

from prefect import flow

from benchgate.run.release import load_template, release_request
from flows.benchmark import benchmark


@flow(name="benchmark", flow_run_name="release · {model[id]}", persist_result=False)
async def benchmark_release(
    template_path: str, model: dict[str, Any], store_url: str | None = None
) -> dict[str, Any]:
    """`model` is the event's payload (id, provider, model, base_url, ...), passed whole by the trigger."""
    request = release_request(load_template(template_path), model)
    out_dir = tempfile.mkdtemp(prefix="benchgate-release-")
    return await benchmark.fn(request.model_dump(mode="json"), out_dir=out_dir, store_url=store_url)
