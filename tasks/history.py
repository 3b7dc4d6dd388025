"""Prefect tasks: record completed reports in the metric history; show the trend in report.md and the UI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact
from prefect.cache_policies import NO_CACHE

from benchgate.report.history import (
    append_report,
    drops,
    read_history,
    render_trend_markdown,
    trend,
    trend_table,
)
from benchgate.store import Store


@task(name="record-history", cache_policy=NO_CACHE)
def record_history(report: dict[str, Any], store: Store) -> int:
    return append_report(store, report)


@task(name="publish-trend", cache_policy=NO_CACHE)
async def publish_trend(
    report: dict[str, Any], store: Store, out_dir: Path, last: int = 5
) -> list[dict[str, Any]]:
    """Append the trend of this benchmark's metrics to report.md (out_dir and store) and as table artifacts.

    Returns the drops this run introduced, so a caller can act on them.
    """
    rows = trend(read_history(store, name=report["name"]), last=last)
    markdown = render_trend_markdown(rows, report["benchmarkId"])
    report_md = out_dir / "report.md"
    if report_md.exists():
        report_md.write_text(report_md.read_text() + "\n" + markdown)
        store.write_bytes(store.report_path(report["benchmarkId"], "report.md"), report_md.read_bytes())
    key = "benchgate-" + report["benchmarkId"]
    if rows:
        await acreate_table_artifact(
            trend_table(rows), key=f"{key}-trend", description=f"{report['name']}: last {last} runs"
        )
    await acreate_markdown_artifact(markdown, key=f"{key}-trend-md", description="trend with drops flagged")
    flagged = drops(rows, report["benchmarkId"])
    if flagged:
        get_run_logger().warning("%d metric(s) dropped since the previous run", len(flagged))
    return [vars(r) for r in flagged]
