"""`benchgate export`: a stored run's items as one table, for review in a notebook or a spreadsheet.

One row per item, model and sample (one sample unless the task draws several): what was asked and
expected, what the model answered, the item's scores and what the answer cost. Formats are a small
registry; adding one is one entry in EXPORTS.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from benchgate.errors import RequestError
from benchgate.report.items import RunItems, load_items, prompt_text, reference_text, scored_pairs
from benchgate.spec.report import Report
from benchgate.store import Store

FIXED_COLUMNS = ["task", "model", "example_id", "sample_index", "prompt", "reference", "output"]
COST_COLUMNS = ["latency_ms", "input_tokens", "output_tokens", "error"]
SCORE_PREFIX = "score_"  # one column per metric: score_exact-match, score_rouge-l


@dataclass(frozen=True)
class ExportFormat:
    extension: str
    render: Callable[[pd.DataFrame], bytes]


def _jsonl(frame: pd.DataFrame) -> bytes:
    text = frame.to_json(orient="records", lines=True, force_ascii=False)
    return text.encode() if text.endswith("\n") or not text else (text + "\n").encode()


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


EXPORTS: dict[str, ExportFormat] = {
    export.extension: export
    for export in (
        ExportFormat("jsonl", _jsonl),
        ExportFormat("csv", _csv),
        ExportFormat("parquet", _parquet),
    )
}


def export_format(name: str) -> ExportFormat:
    if name not in EXPORTS:
        raise RequestError([f"--format: unknown format {name!r} (formats: {', '.join(EXPORTS)})"])
    return EXPORTS[name]


def item_rows(store: Store, report: Report, task: str | None = None) -> pd.DataFrame:
    """Every scored (task, model) pair of the report, one row per item and sample; StoreError when a
    pair's per-item scores are not in the store (then nothing is exported)."""
    pairs = scored_pairs(report, task)
    if not pairs:
        raise RequestError([f"report {report.benchmark_id} has no scored items to export"])
    items = [load_items(store, report, model, name) for name, model in pairs]
    frame = pd.concat([_pair_rows(i, report.metrics(i.task)) for i in items], ignore_index=True)
    scores = sorted(c for c in frame.columns if c.startswith(SCORE_PREFIX))
    return frame.reindex(columns=FIXED_COLUMNS + scores + COST_COLUMNS).astype(
        {"sample_index": "Int64", "input_tokens": "Int64", "output_tokens": "Int64"}
    )


def _pair_rows(items: RunItems, metrics: set[str]) -> pd.DataFrame:
    """The pair's generations joined with its metric scores; errored items (no scores) keep their error."""
    scores = items.scores.drop_duplicates("example_id").set_index("example_id")
    scores = scores[[c for c in scores.columns if c in metrics]].add_prefix(SCORE_PREFIX)
    example_ids = list(dict.fromkeys([*items.generations, *scores.index]))
    rows = []
    for example_id in example_ids:
        samples = items.generations.get(example_id) or [{}]
        for sample in samples:
            rows.append(
                {
                    "task": items.task,
                    "model": items.model,
                    "example_id": example_id,
                    "sample_index": sample.get("sample_index"),
                    "prompt": prompt_text(sample.get("prompt")),
                    "reference": reference_text(items.references.get(example_id)),
                    "output": sample.get("output"),
                    **(scores.loc[example_id].to_dict() if example_id in scores.index else {}),
                    **{column: sample.get(column) for column in COST_COLUMNS},
                }
            )
    return pd.DataFrame(rows)
