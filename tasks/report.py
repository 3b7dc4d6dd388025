"""Prefect tasks: build the report from the subflows' results, and publish it (files + UI artifacts)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import task
from prefect.artifacts import acreate_link_artifact, acreate_markdown_artifact, acreate_table_artifact
from prefect.cache_policies import NO_CACHE

from benchgate.report.build import append_step_summary, build_report
from benchgate.report.formats import REPORT_FILES, write_outputs
from benchgate.report.html import FILENAME as HTML_FILENAME
from benchgate.report.html import write_report_html
from benchgate.run.evaluation import TaskResult
from benchgate.spec.report import Report
from benchgate.spec.request import BenchmarkRequest
from benchgate.store import Store


@task(name="aggregate", cache_policy=NO_CACHE)
async def aggregate(
    benchmark_id: str, request: BenchmarkRequest, results: list[dict[str, Any]]
) -> dict[str, Any]:
    """The report as JSON data: flows pass it on as a parameter, which Prefect shows in its UI.

    Async, as every task here: a sync task run makes its own Prefect client (a TLS context and a
    connection) where an async one shares its flow's."""
    return build_report(benchmark_id, request, [TaskResult(**r) for r in results]).to_dict()


@task(name="publish-report", cache_policy=NO_CACHE)
async def publish(report: dict[str, Any], gate_markdown: str | None, out_dir: Path, store: Store) -> Path:
    """Write report.json and report.md beside the gate outputs, copy all to the store, show them in the UI.

    report.md renders the gate's verdicts from report["gate"]; ``gate_markdown``, the same table as the
    gate flow returned it, is not needed for that (the benchmark flow still passes it).
    """
    parsed = Report.model_validate(report)
    markdown = write_outputs(out_dir, parsed, REPORT_FILES)["report.md"]
    write_report_html(out_dir, report, store)
    append_step_summary(markdown)
    for path in sorted(out_dir.iterdir()):
        if path.is_file() and path.suffix in {".json", ".md", ".xml", ".html"}:
            store.write_bytes(store.report_path(parsed.benchmark_id, path.name), path.read_bytes())
    key = "benchgate-" + parsed.benchmark_id
    # One API round trip for all of them, not one after another, at the end of every run.
    artifacts: list[Coroutine[Any, Any, UUID]] = [
        acreate_markdown_artifact(markdown, key=f"{key}-report", description=f"{parsed.name} report")
    ]
    rows = [
        {"task": task_name, "model": row.model, **row.metrics}
        for task_name, section in parsed.report.items()
        for row in section.results
    ]
    if rows:
        artifacts.append(
            acreate_table_artifact(rows, key=f"{key}-table", description="metrics per model and task")
        )
    for name, artifact, description in (
        ("report.json", "files", "the report as JSON"),
        (HTML_FILENAME, "html", "HTML report: tables, gate, charts, items"),
    ):
        stored = store.report_path(parsed.benchmark_id, name)
        artifacts.append(
            acreate_link_artifact(
                stored if not store.is_local else Path(stored).resolve().as_uri(),
                link_text=name,
                key=f"{key}-{artifact}",
                description=description,
            )
        )
    await asyncio.gather(*artifacts)
    return out_dir
