"""`execution: work-pool`: each (model, evaluation task) runs as a flow run of a deployment on a work pool.

A worker's flow run cannot hand its return value back (evaluate does not persist results, and the
parent may not reach the worker's result storage), so the worker side writes the TaskResult into the
shared store and the dispatching side reads it from there: the store stays the source of truth.

Every flow run is a process of its own, so the models' concurrency and rate limits are held by the
Prefect server (benchgate/providers/shared_limits.py): created before the fan-out, taken on workers.
"""

from __future__ import annotations

import json
from typing import Any

from prefect import flow
from prefect.context import TagsContext
from prefect.deployments import arun_deployment

from benchgate.providers import provider_class
from benchgate.providers.http import HttpProvider
from benchgate.providers.shared_limits import limits_across_processes, shared_limits, upsert_limits
from benchgate.run.evaluation import TaskResult
from benchgate.settings import settings
from benchgate.spec.request import BenchmarkRequest
from benchgate.store import Store, partition_name
from flows.evaluate import evaluate
from flows.policy import checked_request

POLL_SECONDS = 1.0


def evaluate_deployment() -> str:
    return settings().evaluate_deployment


def result_path(store: Store, benchmark_id: str, model_id: str, task_name: str) -> str:
    return store.path(
        "results", benchmark_id, f"model={partition_name(model_id)}", f"task={partition_name(task_name)}.json"
    )


@flow(name="evaluate", flow_run_name="evaluate · {model_id} · {task_name}", persist_result=False)
async def evaluate_on_worker(
    request: dict[str, Any], model_id: str, task_name: str, benchmark_id: str, store_url: str
) -> dict[str, Any]:
    """The worker side: evaluate's body in this flow run, then its result into the store."""
    checked_request(request, store_url)  # dispatched by a checked benchmark run; the policy file if any
    with limits_across_processes():
        result = await evaluate.fn(request, model_id, task_name, benchmark_id, store_url)
    store = Store(store_url)
    store.write_bytes(result_path(store, benchmark_id, model_id, task_name), json.dumps(result).encode())
    return result


async def create_shared_limits(request: BenchmarkRequest) -> None:
    """Before the fan-out: each HTTP model's limits as Prefect global limits, with this request's values."""
    from prefect.client.orchestration import get_client

    limits = []
    for model in request.models:
        cls = provider_class(model.provider)
        if issubclass(cls, HttpProvider) and (endpoint := model.base_url or cls.default_base_url):
            limits.append(shared_limits(model, endpoint))
    if limits:
        async with get_client() as client:
            await upsert_limits(client, limits)


async def evaluate_on_pool(
    request: dict[str, Any], model_id: str, task_name: str, benchmark_id: str, store_url: str
) -> dict[str, Any]:
    """The dispatching side: run the deployment as a subflow, wait for it, read its result from the store."""
    store = Store(store_url)
    parameters = {
        "request": request,
        "model_id": model_id,
        "task_name": task_name,
        "benchmark_id": benchmark_id,
        "store_url": store.root if store.is_local else store.url,  # a worker's working directory differs
    }
    run = await arun_deployment(
        evaluate_deployment(),
        parameters=parameters,
        tags=sorted(TagsContext.get().current_tags),
        poll_interval=POLL_SECONDS,
        timeout=None,
    )
    path = result_path(store, benchmark_id, model_id, task_name)
    if run.state is not None and run.state.is_completed() and store.exists(path):
        return json.loads(store.read_bytes(path))
    spec = BenchmarkRequest.model_validate(request).task(task_name)  # for its dataset name only
    state = run.state.name if run.state else "unknown"
    return TaskResult(
        model_id,
        task_name,
        spec.dataset or task_name,
        "",
        failure=f"work-pool flow run {run.name} ended {state}",
    ).to_dict()
