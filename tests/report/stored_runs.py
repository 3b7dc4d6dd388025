"""Runs written straight into a store (scores, generations, examples, report), for drill-down and export
tests that need exact control over which rows exist: reused answers, later runs, other revisions."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from benchgate.spec.example import Example
from benchgate.spec.report import MetricStats, Report, ResultRow, TaskDetails, TaskSection
from benchgate.store import Store
from benchgate.store.store import GENERATION_SCHEMA

TASK = "arith"
COMPLETED = "2024-05-01T12:00:00Z"


def messages(example_id: str, question: str = "Question") -> list[dict[str, str]]:
    return [{"role": "system", "content": "Add."}, {"role": "user", "content": f"{question} {example_id}?"}]


def write_examples(store: Store, digest: str, references: dict[str, Any], question: str = "Question") -> None:
    """An examples file of the task, as `prepare_examples` writes one per task definition and revision."""
    examples = [Example(i, messages(i, question), [ref]) for i, ref in references.items()]
    store.write_examples(f"{TASK}-{digest}", examples, 100)


def generation(
    benchmark_id: str, model: str, example_id: str, output: str | None, **extra: Any
) -> dict[str, Any]:
    row: dict[str, Any] = {name: None for name in GENERATION_SCHEMA.names}
    row.update(
        benchmark_id=benchmark_id,
        model_id=model,
        dataset_revision="r1",
        example_id=example_id,
        sample_index=0,
        prompt=json.dumps(messages(example_id), ensure_ascii=False),
        output=output,
        latency_ms=12.5,
        input_tokens=7,
        output_tokens=2,
        created_at="2024-05-01T11:00:00+00:00",
    )
    row.update(extra)
    # Content-addressed as the engine writes it: one key per item, sample and revision.
    row["cache_key"] = (
        row["cache_key"] or f"{model}/{example_id}/{row['sample_index']}/{row['dataset_revision']}"
    )
    return row


def write_generations(store: Store, model: str, rows: list[dict[str, Any]]) -> None:
    writer = store.generation_writer(model, TASK)
    for row in rows:
        writer.append(row)
    writer.close()


def stored_report(
    store: Store,
    benchmark_id: str,
    scores: dict[str, dict[str, float | None]],
    metric: str = "f1-score",
    higher_is_better: bool = True,
    completed_at: str = COMPLETED,
) -> Report:
    """A completed report of ``scores`` (model -> item -> score), with those per-item scores stored."""
    rows, details = [], {}
    for model, items in scores.items():
        frame = pd.DataFrame({"example_id": list(items), metric: list(items.values())}, dtype=object)
        store.write_scores(benchmark_id, model, TASK, frame.astype({metric: float}))
        values = [v for v in items.values() if v is not None]
        mean = sum(values) / len(values)
        rows.append(ResultRow(model=model, **{metric: mean}))
        details[model] = TaskDetails(
            n=len(values),
            n_items=len(items),
            dataset_revision="r1",
            metrics={metric: MetricStats(value=mean, n=len(values))},
            higher_is_better={metric: higher_is_better},
            scales={metric: "percent"},
        )
    report = Report(
        benchmark_id=benchmark_id,
        name="stored",
        status="completed",
        completed_at=completed_at,
        report={TASK: TaskSection(dataset="arith.jsonl", results=rows)},
        details={TASK: details},
    )
    store.write_bytes(store.report_path(benchmark_id, "report.json"), report.to_json().encode())
    return report
