"""A stored run's per-item data: scores, the answers behind them and the references, joined by item.

The store keeps these apart (scores per run; generations per model x task, shared across runs by
content; examples per task definition), so a run's answers are picked back out: its own rows first,
then the newest successful row it could have reused (created before the report, same dataset revision).
Drill-downs, `benchgate diff` and `benchgate export` all read items through here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchgate import jsonio
from benchgate.errors import RequestError, StoreError
from benchgate.spec.report import Report
from benchgate.store import Store

if TYPE_CHECKING:  # pandas (0.25 s) is not imported at start-up (a run imports it ahead)
    import pandas as pd

GENERATION_COLUMNS = [
    "benchmark_id",
    "dataset_revision",
    "example_id",
    "sample_index",
    "prompt",
    "output",
    "error",
    "latency_ms",
    "input_tokens",
    "output_tokens",
    "created_at",
]


@dataclass
class RunItems:
    """One model's items on one task in one run; ``scores`` has example_id and one column per metric."""

    benchmark_id: str
    model: str
    task: str
    scores: pd.DataFrame
    generations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # by item, by sample
    references: dict[str, Any] = field(default_factory=dict)  # by item: the task's references

    def answer(self, example_id: str) -> str:
        """The first sample's answer (or its error), as the drill-down shows it."""
        rows = self.generations.get(example_id)
        if not rows:
            return ""
        return rows[0]["output"] or (f"error: {rows[0]['error']}" if rows[0]["error"] else "")

    def prompt(self, example_id: str) -> str:
        rows = self.generations.get(example_id)
        return prompt_text(rows[0]["prompt"]) if rows else ""

    def reference(self, example_id: str) -> str:
        return reference_text(self.references.get(example_id))


def load_report(source: str, store: Store) -> Report:
    """A report.json path, or the benchmark id of a report in the store; it must have per-pair details."""
    path = Path(source)
    if path.is_file():
        try:
            report = Report.model_validate_json(path.read_bytes())
        except ValueError as error:
            raise RequestError([f"{source}: not a benchgate report.json ({error})"]) from None
    else:
        data = store.read_report(source)
        if data is None:
            raise RequestError(
                [f"{source}: no such report.json, nor a benchmark id in the store {store.url}"]
            )
        report = Report.model_validate(data)
    if not report.details:
        raise RequestError([f"{source}: report {report.benchmark_id} has no results ({report.status})"])
    return report


def scored_pairs(report: Report, task: str | None = None) -> list[tuple[str, str]]:
    """(task, model) pairs of the report that scored items, optionally of one task only."""
    tasks = list(report.report)
    if task is not None and task not in tasks:
        raise RequestError([f"--task: unknown evaluation task {task!r} (tasks: {', '.join(tasks)})"])
    return [
        (name, row.model)
        for name in tasks
        if task is None or name == task
        for row in report.report[name].results
        if not report.pair_details(name, row.model).failure
    ]


def load_items(store: Store, report: Report, model: str, task: str) -> RunItems:
    """The pair's items; StoreError when its per-item scores are not in this store."""
    scores = store.read_scores(report.benchmark_id, model, task)
    if scores is None or "example_id" not in scores:
        raise StoreError(
            f"report {report.benchmark_id}: no per-item scores for {model} on {task} in the store "
            f"{store.url} (another --store, or pruned?)"
        )
    scores = scores.astype({"example_id": str})
    generations = _run_generations(store, report, model, task)
    prompts = {example_id: rows[0]["prompt"] for example_id, rows in generations.items()}
    return RunItems(report.benchmark_id, model, task, scores, generations, _references(store, task, prompts))


def _run_generations(store: Store, report: Report, model: str, task: str) -> dict[str, list[dict[str, Any]]]:
    """Per item, one row per sample: this run's own, else the newest success it could have reused."""
    revision = report.pair_details(task, model).dataset_revision
    # completedAt has whole seconds; every row the run used was written before it.
    cutoff = _parse_time(report.completed_at) + timedelta(seconds=1) if report.completed_at else None
    chosen: dict[tuple[str, int], dict[str, Any]] = {}

    def rank(row: dict[str, Any]) -> tuple[bool, str]:
        """The run's own rows beat reused ones; among equals, the newest."""
        return row["benchmark_id"] == report.benchmark_id, str(row["created_at"])

    for row in store.read_generations(model, task, GENERATION_COLUMNS):
        if revision and row["dataset_revision"] != revision:
            continue
        if cutoff is not None and _parse_time(row["created_at"]) > cutoff:
            continue
        if row["benchmark_id"] != report.benchmark_id and row["error"] is not None:
            continue  # another run's failure: never reused, so never this run's answer
        key = (str(row["example_id"]), int(row["sample_index"]))
        current = chosen.get(key)
        if current is None or rank(row) > rank(current):
            chosen[key] = row
    by_item: dict[str, list[dict[str, Any]]] = {}
    for (example_id, _), row in sorted(chosen.items()):
        by_item.setdefault(example_id, []).append(row)
    return by_item


def _references(store: Store, task: str, prompts: dict[str, str]) -> dict[str, Any]:
    """References by item from the task's example files; where several files hold an item (another
    dataset revision or task definition), the one whose prompt the run sent."""
    found: dict[str, Any] = {}
    for path in sorted(store.fs.glob(store.path("examples", f"{task}-*.parquet"))):
        table = store.read_table(path, columns=["example_id", "messages", "references"])
        for row in table.to_pylist() if table is not None else []:
            example_id = row["example_id"]
            if example_id not in found or _same_messages(row["messages"], prompts.get(example_id)):
                found[example_id] = json.loads(row["references"])
    return found


def _same_messages(stored: str, sent: str | None) -> bool:
    """Both files hold the messages as JSON text, written by versions that spaced it differently
    (a reused answer can be older than the examples file): what they say is compared."""
    return sent is not None and (stored == sent or jsonio.loads(stored) == jsonio.loads(sent))


def prompt_text(prompt: str | None) -> str:
    """The last user message of a stored prompt (the messages as JSON): what a reviewer reads first."""
    if not prompt:
        return ""
    try:
        messages = jsonio.loads(prompt)  # once per item of report.html: 50,000 at a time
    except json.JSONDecodeError:
        return prompt
    user = [m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    content = user[-1] if user else prompt
    return content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)


def reference_text(references: Any) -> str:
    """One reference as it is; several, or structured ones, as JSON."""
    if references is None:
        return ""
    if isinstance(references, list) and len(references) == 1 and isinstance(references[0], str):
        return references[0]
    return references if isinstance(references, str) else json.dumps(references, ensure_ascii=False)


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
