"""`execution: work-pool`: a benchmark's (model, evaluation task) units run in a few lanes on a work pool.

A lane is one flow run of the evaluate deployment, one worker process, running its units one after
another as in-process `evaluate` subflows, so the Prefect UI still shows every model x task as its own
subflow with its progress and artifacts. Why lanes and not a flow run per unit: a flow run costs a
worker poll and a new process (Python, Prefect and benchgate imported, the flow loaded), 10-20 s per
wave of subflows on a shared 2-core machine; a lane pays it once (docs/operations.md, "What the work
pool costs"). A benchmark runs min(units, BENCHGATE_MAX_CONCURRENT_SUBFLOWS) lanes, as many units at
once as local mode; units are assigned before the fan-out, balanced by their expected model time.

A worker's flow run cannot hand its return value back (evaluate does not persist results, and the
parent may not reach the worker's result storage), so a lane writes each unit's TaskResult into the
shared store as it ends, tagged with the lane's flow run id, and the dispatching side reads them from
there: the store stays the source of truth, and a lane that crashes loses only its unfinished units.

Lanes are processes of their own, so the models' concurrency and rate limits are held by the Prefect
server (benchgate/providers/shared_limits.py): created before the fan-out, taken in the lanes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import FlowRun
from prefect.context import TagsContext
from prefect.deployments import arun_deployment
from prefect.runtime import flow_run

from benchgate.providers import provider_class
from benchgate.providers.http import HttpProvider
from benchgate.providers.limits import limits_across_processes
from benchgate.providers.shared_limits import shared_limits, upsert_limits
from benchgate.run.evaluation import TaskResult
from benchgate.settings import settings
from benchgate.spec.request import BenchmarkRequest
from benchgate.store import Store, partition_name
from flows.evaluate import evaluate
from flows.json_flow import json_flow
from flows.policy import checked_request

Unit = tuple[str, str]  # (model id, evaluation task name)
# How often the dispatcher asks for the lanes' states (one call for all): a lane's end is noticed once,
# not once per unit.
POLL_SECONDS = 2.0
# A task without `limit` counts as this many items when balancing (its size is known only on a worker).
UNKNOWN_ITEMS = 1000


def evaluate_deployment() -> str:
    return settings().evaluate_deployment


def result_path(store: Store, benchmark_id: str, model_id: str, task_name: str) -> str:
    return store.path(
        "results", benchmark_id, f"model={partition_name(model_id)}", f"task={partition_name(task_name)}.json"
    )


def plan_lanes(request: BenchmarkRequest, units: Sequence[Unit], lanes: int) -> list[list[Unit]]:
    """`units` over min(lanes, len(units)) lanes, each unit (longest first) onto the least loaded lane.

    A unit's expected model time is items x answers per item / the model's concurrency; within a lane
    units keep the request's order.
    """

    def cost(unit: Unit) -> float:
        model, task = request.model(unit[0]), request.task(unit[1])
        return (task.limit or UNKNOWN_ITEMS) * task.generations_per_item / model.concurrency

    plan: list[list[int]] = [[] for _ in range(min(lanes, len(units)))]
    loads = [0.0] * len(plan)
    for index in sorted(range(len(units)), key=lambda i: -cost(units[i])):
        lane = loads.index(min(loads))
        plan[lane].append(index)
        loads[lane] += cost(units[index])
    return [[units[i] for i in sorted(lane)] for lane in plan]


@json_flow(name="evaluate", persist_result=False)
async def evaluate_on_worker(
    request: dict[str, Any], units: list[Unit], benchmark_id: str, store_url: str
) -> None:
    """A lane, on a worker: each unit an evaluate subflow, its result into the store as it ends.

    A unit that raises is stored as a failure and the next units still run; the lane then ends
    Failed, so its state says so too.
    """
    parsed = checked_request(request, store_url)  # from a checked benchmark run; the policy file if any
    store = Store(store_url)
    lane_id = str(flow_run.get_id())
    failed = []
    with limits_across_processes():
        for model_id, task_name in units:
            try:
                result = await evaluate(request, model_id, task_name, benchmark_id, store_url)
            except Exception as error:
                get_run_logger().exception("%s · %s failed", model_id, task_name)
                failed.append(f"{model_id} · {task_name}")
                result = _failure(parsed, model_id, task_name, f"{type(error).__name__}: {error}")
            record = json.dumps({"flow_run_id": lane_id, "result": result}).encode()
            store.write_bytes(result_path(store, benchmark_id, model_id, task_name), record)
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(units)} subflows failed: {', '.join(failed)}")


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
    request: BenchmarkRequest, units: Sequence[Unit], benchmark_id: str, store: Store, lanes: int
) -> list[dict[str, Any]]:
    """The dispatching side: the lanes as subflows of this flow run; the units' results, in `units` order."""
    plan = plan_lanes(request, units, lanes)
    parameters = {
        "request": request.model_dump(mode="json"),
        "benchmark_id": benchmark_id,
        "store_url": store.root if store.is_local else store.url,  # a worker's working directory differs
    }
    tags = sorted(TagsContext.get().current_tags)
    created = []
    # One at a time: SQLite answers concurrent creations 503, which the client retries seconds later.
    for number, lane in enumerate(plan, 1):
        created.append(
            await arun_deployment(
                evaluate_deployment(),
                parameters={**parameters, "units": lane},
                flow_run_name=f"evaluate · lane {number} of {len(plan)} · {len(lane)} model x task",
                tags=tags,
                timeout=0,  # created as a subflow of this run; waited for below, all lanes in one call
            )
        )
    runs = await _finished([run.id for run in created])
    results = {
        unit: _lane_result(request, store, benchmark_id, run, unit)
        for run, lane in zip(runs, plan, strict=True)
        for unit in lane
    }
    return [results[unit] for unit in units]


async def _finished(ids: list[UUID]) -> list[FlowRun]:
    """The flow runs once all are in a final state, asking for all of them in one call per poll."""
    async with get_client() as client:
        while True:
            found = await client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)))
            if len(found) == len(ids) and all(run.state and run.state.is_final() for run in found):
                by_id = {run.id: run for run in found}
                return [by_id[i] for i in ids]
            await asyncio.sleep(POLL_SECONDS)


def _lane_result(
    request: BenchmarkRequest, store: Store, benchmark_id: str, run: FlowRun, unit: Unit
) -> dict[str, Any]:
    """The unit's result as its lane stored it, or a failure if the lane ended before storing it."""
    path = result_path(store, benchmark_id, *unit)
    if store.exists(path):
        record = json.loads(store.read_bytes(path))
        if record["flow_run_id"] == str(run.id):  # not a result left by an earlier run of this id
            return record["result"]
    state = run.state.name if run.state else "unknown"
    return _failure(request, *unit, f"work-pool flow run {run.name} ended {state} before this subflow ended")


def _failure(request: BenchmarkRequest, model_id: str, task_name: str, reason: str) -> dict[str, Any]:
    dataset = request.task(task_name).dataset or task_name
    return TaskResult(model_id, task_name, dataset, "", failure=reason).to_dict()
