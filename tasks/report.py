"""Prefect tasks: build the report from the subflows' results, and publish it (files + UI artifacts)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import acreate_link_artifact, acreate_markdown_artifact, acreate_table_artifact
from prefect.cache_policies import NO_CACHE

from benchgate.report.build import append_step_summary, build_report, render_markdown
from benchgate.run.evaluation import TaskResult
from benchgate.spec.request import BenchmarkRequest
from benchgate.store import Store


@task(name="aggregate", cache_policy=NO_CACHE)
def aggregate(benchmark_id: str, request: BenchmarkRequest, results: list[dict[str, Any]]) -> dict[str, Any]:
    return build_report(benchmark_id, request, [TaskResult(**r) for r in results])


@task(name="publish-report", cache_policy=NO_CACHE)
async def publish(report: dict[str, Any], gate_markdown: str | None, out_dir: Path, store: Store) -> Path:
    """Write report.json and report.md beside the gate outputs, copy all to the store, show them in the UI."""
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = render_markdown(report, gate_markdown)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "report.md").write_text(markdown)
    append_step_summary(markdown)
    for path in sorted(out_dir.iterdir()):
        if path.is_file() and path.suffix in {".json", ".md", ".xml"}:
            store.write_bytes(store.report_path(report["benchmarkId"], path.name), path.read_bytes())
    key = "benchgate-" + report["benchmarkId"]
    await acreate_markdown_artifact(markdown, key=f"{key}-report", description=f"{report['name']} report")
    rows = [
        {"task": task_name, "model": row["model"], **{k: v for k, v in row.items() if k != "model"}}
        for task_name, section in report["report"].items()
        for row in section["results"]
    ]
    if rows:
        await acreate_table_artifact(rows, key=f"{key}-table", description="metrics per model and task")
    await acreate_link_artifact(
        store.report_path(report["benchmarkId"], "report.json")
        if not store.is_local
        else Path(store.report_path(report["benchmarkId"], "report.json")).resolve().as_uri(),
        link_text="report.json",
        key=f"{key}-files",
    )
    return out_dir
