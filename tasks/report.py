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
    The report's artifacts (markdown, table) go to the server while report.html and the store's
    copies are written on a thread; the links to the files were made when the run started
    (`link_reports`).
    """
    parsed = Report.model_validate(report)
    markdown = write_outputs(out_dir, parsed, REPORT_FILES)["report.md"]
    writing = asyncio.to_thread(_write_files, out_dir, report, markdown, store, parsed.benchmark_id)
    await asyncio.gather(*_artifacts(parsed, markdown), writing)
    return out_dir


def _write_files(
    out_dir: Path, report: dict[str, Any], markdown: str, store: Store, benchmark_id: str
) -> None:
    """report.html, the GitHub step summary, and every output file copied to the store."""
    write_report_html(out_dir, report, store)
    append_step_summary(markdown)
    for path in sorted(out_dir.iterdir()):
        if path.is_file() and path.suffix in {".json", ".md", ".xml", ".html"}:
            store.write_bytes(store.report_path(benchmark_id, path.name), path.read_bytes())


def _artifacts(parsed: Report, markdown: str) -> list[Coroutine[Any, Any, UUID]]:
    """The report and its metrics table."""
    key = "benchgate-" + parsed.benchmark_id
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
    return artifacts


async def link_reports(benchmark_id: str, store: Store) -> None:
    """Links to report.json and report.html in the store, for the UI: made when the run starts (while
    the model answers), not among the round trips after its last answer. report.json says where the
    run is from the start; report.html is written when it ends."""
    links = []
    for name, artifact, description in (
        ("report.json", "files", "the report as JSON"),
        (HTML_FILENAME, "html", "HTML report: tables, gate, charts, items (written when the run ends)"),
    ):
        stored = store.report_path(benchmark_id, name)
        links.append(
            acreate_link_artifact(
                stored if not store.is_local else Path(stored).resolve().as_uri(),
                link_text=name,
                key=f"benchgate-{benchmark_id}-{artifact}",
                description=description,
            )
        )
    await asyncio.gather(*links)
