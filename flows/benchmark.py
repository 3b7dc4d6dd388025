"""The benchmark flow: one evaluate subflow per (model, evaluation task), then the report and the gate."""

from __future__ import annotations

import functools
import json
import tempfile
from pathlib import Path
from typing import Any

from prefect import get_run_logger, tags
from prefect.runtime import flow_run

from benchgate.report.build import new_benchmark_id, report_exit_code, skeleton_report
from benchgate.report.html.collect import items_collected_ahead
from benchgate.settings import settings
from benchgate.spec.report import ReportStatus
from benchgate.spec.request import BenchmarkRequest
from benchgate.store import Store
from flows.concurrency import bounded_gather
from flows.evaluate import evaluate
from flows.json_flow import json_flow
from flows.judging import compare_pairwise
from flows.policy import checked_request
from flows.remote import create_shared_limits, evaluate_on_pool
from tasks.history import record_history
from tasks.report import aggregate, link_reports, publish


def _run_name() -> str:
    request = flow_run.parameters.get("request") or {}
    return f"benchmark · {request.get('name', 'unnamed')}"


@json_flow(name="benchmark", flow_run_name=_run_name, persist_result=False)
async def benchmark(
    request: dict[str, Any],
    out_dir: str | None = None,
    benchmark_id: str | None = None,
    store_url: str | None = None,
) -> dict[str, Any]:
    """Returns the report, the gate decision (if any), the exit code, and the id of the run's last
    task run (`lastTaskRun`: a temporary Prefect server is stopped once it has recorded it).

    Exit codes: 0 pass, 1 gate failed, 2 invalid or failed run, 3 inconclusive.
    """
    parsed = checked_request(request, store_url, entry=benchmark.fn)
    store = Store(store_url)
    benchmark_id = benchmark_id or new_benchmark_id()
    _write_status(store, benchmark_id, parsed.name, "running")
    logger = get_run_logger()
    logger.info("benchmark %s: %d models x %d tasks", benchmark_id, len(parsed.models), len(parsed.tasks))
    # The subflows carry the tags (people filter by them in the UI), the task runs here do not (see
    # untagged_task_runs).
    unit_tags = (f"benchmark:{parsed.name}", *(f"model:{m.id}" for m in parsed.models), *parsed.tags)
    units = parsed.units()
    try:
        # Before the subflows, not beside them: concurrent writes made SQLite answer the subflow's
        # creation with a 503 (3 of 4 runs), retried about two seconds later.
        await link_reports(benchmark_id, store)
        with items_collected_ahead(len(units)):  # the last unit's report.html rows
            report, last_task_run = await _evaluate_and_report(
                parsed, units, store, benchmark_id, out_dir, unit_tags
            )
    except BaseException:
        _write_status(store, benchmark_id, parsed.name, "failed")
        raise
    return {
        "benchmarkId": benchmark_id,
        "report": report,
        "exit_code": report_exit_code(report),
        "lastTaskRun": last_task_run,
    }


async def _evaluate_and_report(
    parsed: BenchmarkRequest,
    units: list[tuple[str, str]],
    store: Store,
    benchmark_id: str,
    out_dir: str | None,
    unit_tags: tuple[str, ...],
) -> tuple[dict[str, Any], str]:
    """The subflows, the pairwise judges, the report, the gate and the published outputs; and the id
    of the last task run, after which nothing more is recorded."""
    at_once = settings().max_concurrent_subflows  # 4 unless the server is on PostgreSQL
    with tags(*unit_tags):
        if parsed.execution == "work-pool":  # lanes in processes of their own: limits held by the server
            await create_shared_limits(parsed)
            results = await evaluate_on_pool(parsed, units, benchmark_id, store, at_once)
        else:
            body = parsed.model_dump(mode="json")
            results = await bounded_gather(
                [functools.partial(evaluate, body, m, t, benchmark_id, store.url) for m, t in units],
                at_once,
            )
    results = await compare_pairwise(parsed, results, benchmark_id, store)
    report = await aggregate(benchmark_id, parsed, results)
    target = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="benchgate-"))
    decision = None
    if parsed.gate:
        from flows.gate import gate  # scipy's import costs ~0.5 s of start-up: only when gating

        with tags(*unit_tags):
            decision = await gate(report, parsed.gate.model_dump(mode="json"), store.url, str(target))
        report["gate"] = decision["decision"]
    await publish(report, decision["markdown"] if decision else None, target, store)
    recorded = await record_history(report, store, return_state=True)  # type: ignore[misc]
    await recorded.aresult()  # raises as the task did
    return report, str(recorded.state_details.task_run_id)


def _write_status(store: Store, benchmark_id: str, name: str, status: ReportStatus) -> None:
    """A report without results, so readers (the API, `benchgate submit`) see where the run is."""
    store.write_bytes(
        store.report_path(benchmark_id, "report.json"),
        json.dumps(skeleton_report(benchmark_id, name, status)).encode(),
    )
