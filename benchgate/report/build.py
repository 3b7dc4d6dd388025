"""The report: built from the (model, evaluation task) results in report.json's fixed shape."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from benchgate.run.evaluation import TaskResult
from benchgate.spec.report import Report, ReportStatus, ResultRow, TaskDetails, TaskSection, json_ready
from benchgate.spec.request import BenchmarkRequest

# Figures rounded to 6 digits: more is noise in the report and only makes diffs of it harder to read.
DIGITS = 6


def new_benchmark_id() -> str:
    return "bmk-" + secrets.token_hex(6)


def skeleton_report(benchmark_id: str, name: str, status: ReportStatus) -> dict[str, Any]:
    """A report without results, so readers (the API, `benchgate submit`) see where the run is."""
    return Report(benchmark_id=benchmark_id, name=name, status=status).to_dict()


def build_report(benchmark_id: str, request: BenchmarkRequest, results: list[TaskResult]) -> Report:
    """Results rows only for pairs that scored items; details for every pair, failed ones included."""
    by_pair = {(r.task, r.model_id): r for r in results}
    report: dict[str, TaskSection] = {}
    details: dict[str, dict[str, TaskDetails]] = {}
    for task in request.tasks:
        rows, task_details, dataset = [], {}, None
        for model in request.models:
            result = by_pair.get((task.task, model.id))
            if result is None:
                continue
            dataset = dataset or result.dataset
            figures = {key: getattr(result, key) for key in TaskDetails.model_fields}
            task_details[model.id] = TaskDetails.model_validate(json_ready(figures, DIGITS))
            if result.failure is None and result.n > 0:
                values = {m: json_ready(v["value"], DIGITS) for m, v in result.metrics.items()}
                rows.append(ResultRow(model=model.id, **values))
        report[task.task] = TaskSection(dataset=dataset or task.dataset or task.task, results=rows)
        details[task.task] = task_details
    return Report(
        benchmark_id=benchmark_id,
        name=request.name,
        status="failed" if any(r.failure for r in results) else "completed",
        completed_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        report=report,
        details=details,
    )


def report_exit_code(report: Mapping[str, Any]) -> int:
    """The exit code `benchgate run` gives a report read as JSON data (see Report.exit_code)."""
    return Report.model_validate(report).exit_code()


def append_step_summary(markdown: str) -> None:
    """In GitHub Actions, the job's summary page shows the report (results and gate verdicts)."""
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(markdown + "\n")
