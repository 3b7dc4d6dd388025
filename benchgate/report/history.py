"""Metric history across benchmarks: one Parquet file per completed report under `history/` in the store.

One file per benchmark id (not one shared table) so concurrent benchmarks never race on a
read-modify-write, and re-recording a report replaces its rows instead of duplicating them.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from benchgate.spec.report import Report, format_number
from benchgate.store import Store

if TYPE_CHECKING:  # pandas (0.25 s) is not imported at start-up (a run imports it ahead)
    import pandas as pd

HISTORY_SCHEMA = pa.schema(
    [
        ("benchmark_id", pa.string()),
        ("name", pa.string()),
        ("completed_at", pa.string()),
        ("task", pa.string()),
        ("dataset", pa.string()),
        ("model", pa.string()),
        ("metric", pa.string()),
        ("value", pa.float64()),
        ("ci_low", pa.float64()),
        ("ci_high", pa.float64()),
        ("n", pa.int64()),
        ("scale", pa.string()),
        ("higher_is_better", pa.bool_()),
    ]
)
# A drop smaller than this is noise on any realistic sample: one point on percent scales, 0.01 on fractions.
DEFAULT_TOLERANCE = {"percent": 1.0, "fraction": 0.01}


def history_dir(store: Store) -> str:
    return store.path("history")


def history_rows(report: Report) -> list[dict[str, Any]]:
    """The report's metrics, one row per (task, model, metric); failed pairs contribute nothing."""
    rows = []
    for task, section in report.report.items():
        for model, detail in report.task_details(task).items():
            if detail.failure or not detail.n:
                continue
            for metric, stats in detail.metrics.items():
                if stats.value is None:
                    continue
                rows.append(
                    {
                        "benchmark_id": report.benchmark_id,
                        "name": report.name,
                        "completed_at": report.completed_at,
                        "task": task,
                        "dataset": section.dataset,
                        "model": model,
                        "metric": metric,
                        "value": stats.value,
                        "ci_low": stats.ci_low,
                        "ci_high": stats.ci_high,
                        "n": detail.n,
                        "scale": detail.scales.get(metric, "fraction"),
                        "higher_is_better": detail.higher_is_better.get(metric, True),
                    }
                )
    return rows


def append_report(store: Store, report: Report) -> int:
    """Record a completed report; returns the number of rows written (0 for reports not completed)."""
    if report.status != "completed":
        return 0
    rows = history_rows(report)
    if not rows:
        return 0
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, HISTORY_SCHEMA), buffer, compression="zstd")
    store.write_bytes(f"{history_dir(store)}/{report.benchmark_id}.parquet", buffer.getvalue())
    return len(rows)


def read_history(
    store: Store, *, task: str | None = None, metric: str | None = None, name: str | None = None
) -> pd.DataFrame:
    """Every recorded row, oldest first, optionally narrowed to one evaluation task, metric or name."""
    directory = history_dir(store)
    paths = (
        sorted(p for p in store.fs.ls(directory, detail=False) if p.endswith(".parquet"))
        if store.exists(directory)
        else []
    )
    # Store.read_table: no dataset reader to import (0.03-0.3 s at a run's end); an unreadable file is
    # moved to quarantine, named, instead of failing every later run and `benchgate history`.
    tables = [table for path in paths if (table := store.read_table(path, schema=HISTORY_SCHEMA)) is not None]
    frame = pa.concat_tables(tables).to_pandas() if tables else HISTORY_SCHEMA.empty_table().to_pandas()
    for column, wanted in (("task", task), ("metric", metric), ("name", name)):
        if wanted is not None:
            frame = frame[frame[column] == wanted]
    return frame.sort_values(["completed_at", "benchmark_id"], kind="stable").reset_index(drop=True)


@dataclass
class TrendRow:
    task: str
    model: str
    metric: str
    completed_at: str
    benchmark_id: str
    value: float
    change: float | None
    dropped: bool


def trend(history: pd.DataFrame, last: int = 5, tolerance: dict[str, float] | None = None) -> list[TrendRow]:
    """The last `last` values of each (task, model, metric), each with its change since the run before.

    A change against the metric's direction by more than the scale's tolerance is flagged as a drop.
    """
    tolerance = {**DEFAULT_TOLERANCE, **(tolerance or {})}
    out: list[TrendRow] = []
    for (task, model, metric), group in history.groupby(["task", "model", "metric"], sort=True):
        values = group.sort_values(["completed_at", "benchmark_id"], kind="stable").tail(last + 1)
        previous: float | None = None
        rows = []
        for record in values.itertuples(index=False):
            change = None if previous is None else record.value - previous
            worse = None if change is None else (-change if record.higher_is_better else change)
            limit = tolerance.get(record.scale, DEFAULT_TOLERANCE["fraction"])
            dropped = worse is not None and worse > limit and not math.isclose(worse, limit)
            rows.append(
                TrendRow(
                    task,
                    model,
                    metric,
                    record.completed_at,
                    record.benchmark_id,
                    record.value,
                    change,
                    dropped,
                )
            )
            previous = record.value
        out.extend(rows[-last:])
    return out


def drops(rows: list[TrendRow], benchmark_id: str) -> list[TrendRow]:
    """The drops that the given benchmark itself introduced."""
    return [r for r in rows if r.dropped and r.benchmark_id == benchmark_id]


def _number(value: float | None, signed: bool = False) -> str:
    return format_number(value, "+.4g" if signed else ".4g", missing="—")


def trend_table(rows: list[TrendRow]) -> list[dict[str, Any]]:
    """Rows for a Prefect table artifact."""
    return [
        {
            "task": r.task,
            "model": r.model,
            "metric": r.metric,
            "completed_at": r.completed_at,
            "benchmark": r.benchmark_id,
            "value": round(r.value, 6),
            "change": None if r.change is None else round(r.change, 6),
            "drop": "DROP" if r.dropped else "",
        }
        for r in rows
    ]


def render_trend_markdown(rows: list[TrendRow], benchmark_id: str | None = None) -> str:
    """A markdown section for report.md: the recent runs per metric, drops in bold."""
    lines = ["## Trend", ""]
    if not rows:
        return "\n".join([*lines, "No earlier runs recorded.", ""])
    flagged = drops(rows, benchmark_id) if benchmark_id else [r for r in rows if r.dropped]
    if flagged:
        lines += [
            f"**⚠ {len(flagged)} metric(s) dropped since the previous run:** "
            + ", ".join(f"{r.model} · {r.task} · {r.metric} ({_number(r.change, True)})" for r in flagged),
            "",
        ]
    lines += [
        "| task | model | metric | completed | benchmark | value | change |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        change = _number(r.change, True)
        if r.dropped:
            change = f"**{change} ▼**"
        cells = [r.task, r.model, r.metric, r.completed_at, f"`{r.benchmark_id}`", _number(r.value), change]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join([*lines, ""])
