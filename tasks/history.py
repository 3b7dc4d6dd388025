"""Prefect tasks: record completed reports in the metric history; show the trend in report.md and the UI."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact
from prefect.cache_policies import NO_CACHE

from benchgate.report.formats import write_atomic
from benchgate.report.history import (
    append_report,
    drops,
    read_history,
    render_trend_markdown,
    trend,
    trend_table,
)
from benchgate.spec.report import Report
from benchgate.store import Store


@task(name="record-history", cache_policy=NO_CACHE)
async def record_history(report: dict[str, Any], store: Store) -> int:
    return append_report(store, Report.model_validate(report))


@task(name="publish-trend", cache_policy=NO_CACHE)
async def publish_trend(
    report: dict[str, Any], store: Store, out_dir: Path, last: int = 5
) -> list[dict[str, Any]]:
    """Append the trend of this benchmark's metrics to report.md (out_dir and store) and as table artifacts.

    Returns the drops this run introduced, so a caller can act on them.
    """
    parsed = Report.model_validate(report)
    rows = trend(read_history(store, name=parsed.name), last=last)
    markdown = render_trend_markdown(rows, parsed.benchmark_id)
    report_md = out_dir / "report.md"
    if report_md.exists():
        write_atomic(report_md, report_md.read_text(encoding="utf-8") + "\n" + markdown)
        store.write_bytes(store.report_path(parsed.benchmark_id, "report.md"), report_md.read_bytes())
    key = "benchgate-" + parsed.benchmark_id
    if rows:
        await acreate_table_artifact(
            trend_table(rows), key=f"{key}-trend", description=f"{parsed.name}: last {last} runs"
        )
    await acreate_markdown_artifact(markdown, key=f"{key}-trend-md", description="trend with drops flagged")
    flagged = drops(rows, parsed.benchmark_id)
    if flagged:
        get_run_logger().warning("%d metric(s) dropped since the previous run", len(flagged))
    return [asdict(r) for r in flagged]
