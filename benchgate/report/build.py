"""The report (DESIGN.md §4): its fixed shape, its details, and its markdown rendering."""

from __future__ import annotations

import math
import os
import secrets
from datetime import datetime, timezone
from typing import Any

from benchgate.errors import EXIT_GATE_FAILED, EXIT_INCONCLUSIVE, EXIT_INVALID, EXIT_OK
from benchgate.run.evaluation import TaskResult
from benchgate.spec.request import BenchmarkRequest

STATUSES = ("queued", "running", "completed", "failed")
_DETAIL_KEYS = (
    "n",
    "n_items",
    "n_errors",
    "error_rate",
    "inconclusive",
    "dataset_revision",
    "metrics",
    "latency_ms",
    "tokens",
    "cost_usd",
    "requests",
    "reused",
    "higher_is_better",
    "per_item_kind",
    "scales",
    "breakdown",
    "failure",
)


def new_benchmark_id() -> str:
    return "bmk-" + secrets.token_hex(6)


def _clean(value: Any) -> Any:
    """JSON has no NaN: missing numbers are null."""
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 6)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def skeleton_report(benchmark_id: str, name: str, status: str) -> dict[str, Any]:
    return {"benchmarkId": benchmark_id, "name": name, "status": status, "completedAt": None, "report": {}}


def build_report(benchmark_id: str, request: BenchmarkRequest, results: list[TaskResult]) -> dict[str, Any]:
    by_pair = {(r.task, r.model_id): r for r in results}
    report: dict[str, Any] = {}
    details: dict[str, Any] = {}
    for task in request.tasks:
        rows, task_details, dataset = [], {}, None
        for model in request.models:
            result = by_pair.get((task.task, model.id))
            if result is None:
                continue
            dataset = dataset or result.dataset
            task_details[model.id] = _clean({key: getattr(result, key) for key in _DETAIL_KEYS})
            if result.failure is None and result.n > 0:
                rows.append({"model": model.id, **{m: _clean(v["value"]) for m, v in result.metrics.items()}})
        report[task.task] = {"dataset": dataset or task.dataset or task.task, "results": rows}
        details[task.task] = task_details
    failed = any(r.failure for r in results)
    return {
        "benchmarkId": benchmark_id,
        "name": request.name,
        "status": "failed" if failed else "completed",
        "completedAt": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "report": report,
        "details": details,
    }


def _format(value: float | None, metric_scale_percent: bool) -> str:
    if value is None:
        return "—"
    return f"{value:.1f}" if metric_scale_percent else f"{value:.3f}"


def render_markdown(report: dict[str, Any], gate_markdown: str | None = None) -> str:
    """One table per evaluation task with 95% intervals; fits a GitHub step summary."""
    lines = [f"# {report['name']}", "", f"`{report['benchmarkId']}` · status **{report['status']}**", ""]
    for task, section in report["report"].items():
        task_details = report.get("details", {}).get(task, {})
        metrics = [m for m in next(iter(task_details.values()), {}).get("metrics", {})]
        lines += [f"## {task} · {section['dataset']}", ""]
        if not metrics:
            lines += ["No results.", ""]
            continue
        lines.append("| model | " + " | ".join(metrics) + " | n | errors |")
        lines.append("|---" * (len(metrics) + 3) + "|")
        for model, detail in task_details.items():
            if detail.get("failure"):
                lines.append(f"| {model} | failed: {detail['failure']} |")
                continue
            cells = []
            for metric in metrics:
                stats = detail["metrics"][metric]
                percent = detail["scales"][metric] == "percent"
                cells.append(
                    f"{_format(stats['value'], percent)} "
                    f"[{_format(stats['ci_low'], percent)}, {_format(stats['ci_high'], percent)}]"
                )
            flag = " ⚠ inconclusive" if detail.get("inconclusive") else ""
            lines.append(
                f"| {model} | " + " | ".join(cells) + f" | {detail['n']} | {detail['n_errors']}{flag} |"
            )
        lines.append("")
    lines.append(
        "Values with 95% bootstrap confidence intervals over items; ROUGE as fractions, others in percent."
    )
    if gate_markdown:
        lines += ["", gate_markdown]
    return "\n".join(lines) + "\n"


def report_exit_code(report: dict[str, Any]) -> int:
    """The exit code `benchgate run` gives the same report (DESIGN.md §6)."""
    if report["status"] == "failed":
        return EXIT_INVALID
    gate = report.get("gate")
    if gate:
        if gate["decision"] == "fail":
            return EXIT_GATE_FAILED
        if gate["decision"] == "inconclusive":
            return EXIT_INCONCLUSIVE
        undelivered = any(d.get("required") and not d.get("ok") for d in gate.get("deliveries", []))
        return EXIT_INCONCLUSIVE if undelivered else EXIT_OK
    details = report.get("details", {})
    inconclusive = any(d.get("inconclusive") for task in details.values() for d in task.values())
    return EXIT_INCONCLUSIVE if inconclusive else EXIT_OK


def append_step_summary(markdown: str) -> None:
    """In GitHub Actions, the job's summary page shows the report (results and gate verdicts)."""
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(markdown + "\n")
