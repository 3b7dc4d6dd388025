"""The review commands: `diff` and `export` of stored runs, `import` of other tools' runs, `judge-check`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import typer

from benchgate.interfaces.cli_common import StoreOption, app, user_errors
from benchgate.run.validation import load_request
from benchgate.settings import settings


@app.command()
@user_errors
def diff(
    report_a: str = typer.Argument(
        ..., help="The baseline run: a report.json or a benchmark id in the store."
    ),
    report_b: str = typer.Argument(..., help="The run compared with it, the same way."),
    task: str | None = typer.Option(None, "--task", help="Only this evaluation task."),
    metric: str | None = typer.Option(None, "--metric", help="Only this metric."),
    store: StoreOption = None,
) -> None:
    """The items that moved most from run A to run B, per model, task and metric, with counts."""
    from benchgate.report.drilldown import diff_runs
    from benchgate.report.items import load_report
    from benchgate.report.markdown import render_drilldown
    from benchgate.store import Store

    stored = Store(store)
    baseline, report = load_report(report_a, stored), load_report(report_b, stored)
    for drilldown in diff_runs(baseline, report, stored, task=task, metric=metric):
        title = f"{drilldown.task} · {drilldown.metric} · {drilldown.model} vs {drilldown.baseline}"
        typer.echo("\n".join(render_drilldown(drilldown, title)) + "\n")


@app.command()
@user_errors
def export(
    report: str = typer.Argument(..., help="A report.json or a benchmark id in the store."),
    fmt: str = typer.Option(..., "--format", help="jsonl, csv or parquet."),
    out: Path | None = typer.Option(
        None, "--out", help="File to write (default: <benchmarkId>-items.<format>)."
    ),
    task: str | None = typer.Option(None, "--task", help="Only this evaluation task."),
    store: StoreOption = None,
) -> None:
    """Write one row per item and model: prompt, reference, output, scores, latency, tokens, error."""
    from benchgate.report.export import export_format, item_rows
    from benchgate.report.formats import write_atomic
    from benchgate.report.items import load_report
    from benchgate.store import Store

    writer = export_format(fmt)
    stored = Store(store)
    parsed = load_report(report, stored)
    rows = item_rows(stored, parsed, task)
    target = out or Path(f"{parsed.benchmark_id}-items.{writer.extension}")
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, writer.render(rows))
    typer.echo(f"{len(rows)} rows written to {target}")


@app.command("import")
@user_errors
def import_runs(
    files: list[Path] = typer.Argument(
        ..., help="lm-eval --log_samples output (samples_*.jsonl or results_*.json) or Inspect AI logs."
    ),
    name: str = typer.Option("imported", "--name", help="The benchmark's name."),
    store: StoreOption = None,
) -> None:
    """Store other tools' per-item results as one benchmark; prints its id and report.json for `gate`."""
    from benchgate.imports import import_files
    from benchgate.store import Store

    stored = Store(store)
    report, runs = import_files(files, stored, name)
    for run in runs:
        n = report.pair_details(run.task, run.model).n
        typer.echo(f"{run.tool}: {run.model} on {run.task}, {n} items scored ({run.source})")
        for note in run.skipped:
            typer.echo(f"  not imported: {note}")
    typer.echo(f"benchmark {report.benchmark_id}")
    typer.echo(f"report {stored.report_path(report.benchmark_id, 'report.json')}")


@app.command("judge-check")
@user_errors
def judge_check(
    request: Path = typer.Argument(..., help="Benchmark request with the judge model and the rubric metric."),
    labels: Path = typer.Option(
        ..., "--labels", help="Labelled items (JSONL, CSV, ...): answer, label, the fields the rubric reads."
    ),
    metric: str | None = typer.Option(None, "--metric", help="Rubric metric (default: the task's only one)."),
    task: str | None = typer.Option(None, "--task", help="Its task (default: the only task with a rubric)."),
    store: StoreOption = None,
) -> None:
    """The judge's agreement with human labels, to know whether to gate on a rubric; prints a table and
    one JSON object."""
    from benchgate.judges.calibration import calibrate, render_calibration
    from benchgate.run.policy import configured_policy, request_check
    from benchgate.store import Store

    # It calls the judge model: held to the operator's policy as `run` is.
    parsed = load_request(request, check=request_check(configured_policy(), store or settings().store))
    result = asyncio.run(calibrate(parsed, str(labels), Store(store), task=task, metric=metric))
    typer.echo(render_calibration(result))
    typer.echo(json.dumps(result))
