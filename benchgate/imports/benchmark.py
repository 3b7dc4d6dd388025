"""Imported runs as one benchmark in the store, written as `benchgate run` writes its own.

Per model x task the per-item scores Parquet (what paired rules read), then report.json and report.md
under reports/{benchmarkId}/ and the metric history, so `benchgate gate`, `history` and `diff` treat an
imported benchmark like any other. Every check runs before the first write: a bad input writes nothing.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timezone
from typing import Any

import numpy as np

from benchgate.errors import DatasetError
from benchgate.imports.base import ImportedRun
from benchgate.report.build import DIGITS, new_benchmark_id
from benchgate.report.formats import FORMATS
from benchgate.report.history import append_report
from benchgate.spec.report import Report, ResultRow, TaskDetails, TaskSection, json_ready
from benchgate.spec.request import BenchmarkRequest
from benchgate.store import Store
from scorers.stats import bootstrap_ci

# The error budget benchgate's own runs have by default: beyond it a pair is inconclusive, not gated.
ERROR_BUDGET: float = BenchmarkRequest.model_fields["error_budget"].default
REPORT_FILES = ("report.json", "report.md")


def checked_runs(runs: list[ImportedRun]) -> list[ImportedRun]:
    """One run per model x task (a file given twice counts once), and runs of a task that can be paired."""
    unique: dict[tuple[str, str], ImportedRun] = {}
    for run in runs:
        earlier = unique.setdefault((run.model, run.task), run)
        if earlier.source != run.source:
            raise DatasetError(
                f"{run.model} on {run.task} is in two files ({earlier.source}, {run.source}); import one"
            )
        if run.scores.shape[1] < 2:
            raise DatasetError(f"{run.source}: no per-item metric to import ({'; '.join(run.skipped)})")
    for task, group in itertools.groupby(sorted(unique.values(), key=lambda r: r.task), key=lambda r: r.task):
        for a, b in itertools.combinations(list(group), 2):
            if not set(a.scores["example_id"]) & set(b.scores["example_id"]):
                raise DatasetError(
                    f"{task}: {a.model} ({a.source}) and {b.model} ({b.source}) have no items in common, "
                    "so no rule could compare them; were they run on the same items?"
                )
    return list(unique.values())


def build_report(benchmark_id: str, name: str, runs: list[ImportedRun]) -> Report:
    """The report benchgate would have written: means with bootstrap intervals, kinds and scales per metric.

    A metric is binary (McNemar's test in paired rules) when every model's items score 0 or 1, and on the
    fraction scale when all values lie in [0, 1] (percent otherwise), the same for every model of a task.
    """
    values: dict[tuple[str, str], list[np.ndarray]] = {}
    for run in runs:
        for metric in run.scores.columns[1:]:
            values.setdefault((run.task, metric), []).append(run.scores[metric].dropna().to_numpy(float))
    joined = {key: np.concatenate(arrays) for key, arrays in values.items()}
    kinds = {key: "binary" if np.isin(v, (0.0, 1.0)).all() else "continuous" for key, v in joined.items()}
    scales = {key: "fraction" if ((v >= 0) & (v <= 1)).all() else "percent" for key, v in joined.items()}
    sections: dict[str, TaskSection] = {}
    details: dict[str, dict[str, TaskDetails]] = {}
    for run in runs:
        frame, metrics = run.scores, list(run.scores.columns[1:])
        scored = int(frame[metrics].notna().any(axis=1).sum())
        n_items = len(frame)
        figures: dict[str, Any] = {
            "n": scored,
            "n_items": n_items,
            "n_errors": n_items - scored,
            "error_rate": (n_items - scored) / n_items if n_items else 0.0,
            "metrics": {m: _stats(frame[m].dropna().to_numpy(float)) for m in metrics},
            "higher_is_better": {m: run.higher_is_better.get(m, True) for m in metrics},
            "per_item_kind": {m: kinds[(run.task, m)] for m in metrics},
            "scales": {m: scales[(run.task, m)] for m in metrics},
        }
        figures["inconclusive"] = figures["error_rate"] > ERROR_BUDGET or scored == 0
        pair = TaskDetails.model_validate(json_ready(figures, DIGITS))
        details.setdefault(run.task, {})[run.model] = pair
        section = sections.setdefault(run.task, TaskSection(dataset=run.dataset))
        if scored:
            section.results.append(
                ResultRow(model=run.model, **{m: s.value for m, s in pair.metrics.items()})
            )
    # Which file each pair came from and what the tool itself reported: an extra key report.json keeps.
    imported_from = [
        {
            "file": run.source,
            "tool": run.tool,
            "model": run.model,
            "task": run.task,
            "reported": json_ready(run.reported),
            "skipped": run.skipped,
        }
        for run in runs
    ]
    return Report.model_validate(
        {
            "benchmark_id": benchmark_id,
            "name": name,
            "status": "completed",
            "completed_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "report": sections,
            "details": details,
            "imported_from": imported_from,
        }
    )


def _stats(values: np.ndarray) -> dict[str, Any]:
    low, high = bootstrap_ci(values) if len(values) else (float("nan"), float("nan"))
    mean = float(values.mean()) if len(values) else float("nan")
    return {"value": mean, "ci_low": low, "ci_high": high, "n": len(values)}


def write_benchmark(store: Store, name: str, runs: list[ImportedRun]) -> tuple[Report, list[ImportedRun]]:
    """Check, then store the runs as a new benchmark; returns its report and the runs stored."""
    runs = checked_runs(runs)
    benchmark_id = new_benchmark_id()
    report = build_report(benchmark_id, name, runs)
    for run in runs:
        store.write_scores(benchmark_id, run.model, run.task, run.scores)
    for filename in REPORT_FILES:
        text = FORMATS[filename].render(report)
        store.write_bytes(store.report_path(benchmark_id, filename), text.encode("utf-8"))
    append_report(store, report)
    return report, runs
