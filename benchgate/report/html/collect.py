"""What report.html shows beyond report.json: per-item rows and the metric history, read from the store.

Item rows carry short excerpts (prompt, output, gold references) so a reviewer can see why a score is
what it is without opening Parquet; the full texts stay in the store.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from benchgate import jsonio
from benchgate.report.history import history_rows, read_history
from benchgate.report.items import prompt_text
from benchgate.spec.report import Report, TaskDetails
from benchgate.store import Store, partition_name

EXCERPT_CHARS = 300
HISTORY_RUNS = 20  # the recent runs the history charts show; older ones are in the store
GENERATION_COLUMNS = [
    "example_id",
    "sample_index",
    "benchmark_id",
    "dataset_revision",
    "prompt",
    "output",
    "error",
    "latency_ms",
    "created_at",
]


def collect(store: Store, report: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(items, history) for the report's models x tasks; items worse on a relative rule marked regressed."""
    parsed = Report.model_validate(report)
    items: list[dict[str, Any]] = []
    for task, per_model in (parsed.details or {}).items():
        references = _references(store, task)
        for model, detail in per_model.items():
            items += _pair_items(store, parsed.benchmark_id, task, model, detail, references)
    _mark_regressions(parsed, items)
    return items, _history(store, parsed)


def excerpt(text: str | None, limit: int = EXCERPT_CHARS) -> str:
    """Head and tail of a long text: a prompt's question and an output's conclusion are at its end."""
    if not text:
        return ""
    if len(text) <= limit:
        return text
    half = (limit - 3) // 2
    return f"{text[:half]} … {text[-half:]}"


def _pair_items(
    store: Store, benchmark_id: str, task: str, model: str, detail: TaskDetails, references: dict[str, str]
) -> list[dict[str, Any]]:
    """Scored items, then the items whose generation failed in this run (they have no scores)."""
    generations = _generations(store, benchmark_id, model, task, detail.dataset_revision)
    scores = store.read_scores(benchmark_id, model, task)
    metrics = [m for m in detail.metrics if scores is not None and m in scores.columns]
    items = []
    for record in scores.to_dict("records") if scores is not None else []:
        example_id = str(record["example_id"])
        values = {m: _finite(record[m]) for m in metrics}
        items.append(_item(model, task, example_id, values, generations.pop(example_id, None), references))
    for example_id, generation in generations.items():
        if generation["error"] is not None and generation["benchmark_id"] == benchmark_id:
            items.append(_item(model, task, example_id, {}, generation, references))
    return items


def _item(
    model: str,
    task: str,
    example_id: str,
    scores: dict[str, float | None],
    generation: dict[str, Any] | None,
    references: dict[str, str],
) -> dict[str, Any]:
    generation = generation or {}
    return {
        "model": model,
        "task": task,
        "id": example_id,
        "scores": scores,
        "prompt": excerpt(prompt_text(generation.get("prompt"))),
        "output": excerpt(generation.get("output")),
        "reference": references.get(example_id, ""),
        "latency_ms": _finite(generation.get("latency_ms")),
        "error": excerpt(generation.get("error")) or None,
        "regressed": False,
        "drops": [],
    }


def _generations(
    store: Store, benchmark_id: str, model: str, task: str, revision: str | None
) -> dict[str, dict[str, Any]]:
    """Each item's first sample as this run made or reused it: this run's rows first, then the newest."""
    best: dict[str, dict[str, Any]] = {}
    for row in store.read_generations(model, task, GENERATION_COLUMNS):
        if row["sample_index"] != 0 or (revision and row["dataset_revision"] not in (None, revision)):
            continue
        key = str(row["example_id"])
        current = best.get(key)
        if current is None or _preference(row, benchmark_id) > _preference(current, benchmark_id):
            best[key] = row
    return best


def _preference(row: dict[str, Any], benchmark_id: str) -> tuple[bool, bool, str]:
    return row["benchmark_id"] == benchmark_id, row["error"] is None, row["created_at"] or ""


def _references(store: Store, task: str) -> dict[str, str]:
    """Gold answers by example id from the task's materialised examples (any revision; newest file wins)."""
    directory = store.path("examples")
    if not store.exists(directory):
        return {}
    pattern = re.compile(re.escape(partition_name(task)) + r"-[0-9a-f]{16}\.parquet")
    files = [
        f for f in store.fs.ls(directory, detail=True) if pattern.fullmatch(f["name"].rsplit("/", 1)[-1])
    ]
    references: dict[str, str] = {}
    for info in sorted(files, key=lambda f: f.get("mtime") or f.get("LastModified") or 0):
        table = store.read_table(info["name"], columns=["example_id", "references"])
        for row in table.to_pylist() if table is not None else []:
            references[str(row["example_id"])] = excerpt(_reference_text(row["references"]))
    return references


def _reference_text(encoded: str | None) -> str:
    values = jsonio.loads(encoded) if encoded else []
    if isinstance(values, list) and all(isinstance(v, str) for v in values):
        return " | ".join(values)
    return json.dumps(values, ensure_ascii=False)


def _mark_regressions(report: Report, items: list[dict[str, Any]]) -> None:
    """An item regressed when, for a relative rule, the candidate scored it worse than the reference model."""
    relative = [rule for rule in (report.gate.rules if report.gate else []) if rule.reference is not None]
    if not relative:
        return
    by_key = {(i["model"], i["task"], i["id"]): i for i in items}
    for rule in relative:
        higher = report.pair_details(rule.task, rule.model).higher_is_better.get(rule.metric, True)
        for item in items:
            if (item["model"], item["task"]) != (rule.model, rule.task):
                continue
            other = by_key.get((rule.reference, rule.task, item["id"]))
            mine = item["scores"].get(rule.metric)
            theirs = other["scores"].get(rule.metric) if other else None
            if mine is None or theirs is None or not (mine < theirs if higher else mine > theirs):
                continue
            drop = {"metric": rule.metric, "reference": rule.reference, "score": theirs}
            if drop not in item["drops"]:
                item["drops"].append(drop)
            item["regressed"] = True


def _history(store: Store, report: Report) -> list[dict[str, Any]]:
    """The report's name's last runs for its tasks and models, this run included before it is recorded."""
    rows = read_history(store, name=report.name).to_dict("records")
    if not any(r["benchmark_id"] == report.benchmark_id for r in rows):
        rows += history_rows(report)
    tasks, models = set(report.details or {}), report.models()
    rows = [r for r in rows if r["task"] in tasks and r["model"] in models]
    runs = sorted({(r["completed_at"] or "", r["benchmark_id"]) for r in rows})[-HISTORY_RUNS:]
    recent = {benchmark_id for _, benchmark_id in runs}
    return [
        {key: _finite(value) if isinstance(value, float) else value for key, value in row.items()}
        for row in rows
        if row["benchmark_id"] in recent
    ]


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None
