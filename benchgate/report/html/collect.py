"""What report.html shows beyond report.json: per-item rows and the metric history, read from the store.

Item rows carry short excerpts (prompt, output, gold references) so a reviewer can see why a score is
what it is without opening Parquet; the full texts stay in the store.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import ContextVar
from typing import Any

from benchgate import jsonio
from benchgate.report.history import history_rows, read_history
from benchgate.report.items import prompt_text
from benchgate.spec.report import Report
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


UnitKey = tuple[str, str, str, str, str | None, tuple[str, ...]]  # store, run, task, model, revision, metrics


def unit_key(
    store: Store, benchmark_id: str, task: str, model: str, revision: str | None, metrics: Sequence[str]
) -> UnitKey:
    return store.url, benchmark_id, task, model, revision, tuple(metrics)


class ItemsAhead:
    """The item rows of the run's last model x task, collected in a thread while its subflow sums
    up (its intervals: a binary metric's from resamples drawn ahead, the others' in the generation
    process, `GeneratorProcess.intervals`) and ends, and the report is aggregated.

    The rows are most of writing report.html (0.6 s at 50,000 items). When the bootstrap ran in this
    process too, the two shared the GIL (5,000 items: 0.22 s together, against 0.11 s for the
    bootstrap alone and 0.08-0.15 s for the rows alone). The rows stay here: collected in the
    generation process, they cut a C=128 run's tail from 0.92 to 0.83 s but made a cached rerun
    slower (3.41 against 3.23 s, 6 alternating runs each), that process first importing the report's
    modules, where the bootstrap needs only NumPy, which it has. Each task's references (the gold
    answers the rows show) are read as soon as its examples are stored (`opened`). Only the last
    unit to store its scores is collected ahead: rows collected earlier are held while other units
    still generate and score (bench/memory.py, 3 models: 1,455-1,494 MiB peak with every unit
    collected ahead, 1,304-1,368 MiB with the last only). A unit is taken from here only when its
    rows are asked for with exactly the same store, run, revision and metrics; any other is
    collected as before.
    """

    def __init__(self, units: int) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="benchgate-report-items")
        self._units: dict[UnitKey, Future[list[dict[str, Any]]]] = {}
        self._references: dict[tuple[str, str], Future[dict[str, str]]] = {}
        self._unscored = units

    def opened(self, store: Store, task: str) -> None:
        """A unit's examples are in the store: its task's references are read now, while the model
        answers, not with the rows at the end (a fifth of their time)."""
        if (store.url, task) not in self._references:
            self._references[store.url, task] = self._pool.submit(_references, store, task)

    def scored(
        self,
        store: Store,
        benchmark_id: str,
        task: str,
        model: str,
        revision: str,
        metrics: Sequence[str] | None,
    ) -> None:
        """A unit's scores are stored; `metrics` None: its rows cannot be collected yet (judges)."""
        self._unscored -= 1
        if self._unscored or metrics is None:
            return
        key = unit_key(store, benchmark_id, task, model, revision, metrics)
        self._units[key] = self._pool.submit(
            lambda: _pair_items(
                store, benchmark_id, task, model, metrics, revision, self.references(store, task)
            )
        )

    def references(self, store: Store, task: str) -> dict[str, str]:
        """The task's references: those read ahead (`opened`), else read now."""
        read = self._references.get((store.url, task))
        return read.result() if read is not None else _references(store, task)

    def take(self, key: UnitKey) -> list[dict[str, Any]] | None:
        future = self._units.pop(key, None)
        if future is None or future.exception() is not None:  # collected again, failing the same way
            return None
        return future.result()

    def close(self) -> None:
        self._units.clear()
        self._references.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)


_ITEMS_AHEAD: ContextVar[ItemsAhead | None] = ContextVar("benchgate_items_ahead", default=None)


@contextlib.contextmanager
def items_collected_ahead(units: int) -> Iterator[ItemsAhead]:
    """Within it, the evaluate subflows of this process (`units` of them) report when their scores
    are stored (`unit_scored`), and the last one's report.html rows are collected ahead."""
    ahead = ItemsAhead(units)
    token = _ITEMS_AHEAD.set(ahead)
    try:
        yield ahead
    finally:
        _ITEMS_AHEAD.reset(token)
        ahead.close()


def unit_opened(store: Store, task: str) -> None:
    """Tell the run's ItemsAhead, if its report is built here, that a unit's examples are stored."""
    ahead = _ITEMS_AHEAD.get()
    if ahead is not None:
        ahead.opened(store, task)


def unit_scored(
    store: Store, benchmark_id: str, task: str, model: str, revision: str, metrics: Sequence[str] | None
) -> None:
    """Tell the run's ItemsAhead, if its report is built in this process, that a unit is scored."""
    ahead = _ITEMS_AHEAD.get()
    if ahead is not None:
        ahead.scored(store, benchmark_id, task, model, revision, metrics)


def collect(store: Store, report: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(items, history) for the report's models x tasks; items worse on a relative rule marked regressed."""
    parsed = Report.model_validate(report)
    ahead = _ITEMS_AHEAD.get()
    read_references = ahead.references if ahead is not None else _references  # read ahead, if they were
    items: list[dict[str, Any]] = []
    for task, per_model in (parsed.details or {}).items():
        references: dict[str, str] | None = None
        for model, detail in per_model.items():
            revision, metrics = detail.dataset_revision, list(detail.metrics)
            key = unit_key(store, parsed.benchmark_id, task, model, revision, metrics)
            rows = ahead.take(key) if ahead is not None else None
            if rows is None:
                references = read_references(store, task) if references is None else references
                rows = _pair_items(store, parsed.benchmark_id, task, model, metrics, revision, references)
            items += rows
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
    store: Store,
    benchmark_id: str,
    task: str,
    model: str,
    wanted: Sequence[str],
    revision: str | None,
    references: dict[str, str],
) -> list[dict[str, Any]]:
    """Scored items, then the items whose generation failed in this run (they have no scores).

    Column-wise, with one dict per item and none per stored row: at 50,000 items this is most of
    writing report.html, serial time after the run's last answer.
    """
    columns = store.read_generation_columns(model, task, GENERATION_COLUMNS)
    chosen = _chosen_rows(columns, benchmark_id, revision)
    prompts, outputs, errors, latencies = (columns[c] for c in ("prompt", "output", "error", "latency_ms"))
    # An item with no stored generation points at a row of None: empty texts, no latency, no error.
    missing = len(prompts)
    for column in (prompts, outputs, errors, latencies):
        column.append(None)
    pairs: list[tuple[str, dict[str, float | None], int]] = []
    scores = store.read_score_table(benchmark_id, model, task)
    if scores is not None:
        metrics = [m for m in wanted if m in scores.column_names]
        by_metric = {m: [_finite(v) for v in scores.column(m).to_pylist()] for m in metrics}
        for index, example_id in enumerate(map(str, scores.column("example_id").to_pylist())):
            values = {metric: column[index] for metric, column in by_metric.items()}
            pairs.append((example_id, values, chosen.pop(example_id, missing)))
    runs = columns["benchmark_id"]
    for example_id, row in chosen.items():
        if errors[row] is not None and runs[row] == benchmark_id:
            pairs.append((example_id, {}, row))
    return [
        {
            "model": model,
            "task": task,
            "id": example_id,
            "scores": item_scores,
            "prompt": excerpt(prompt_text(prompts[row])),
            "output": excerpt(outputs[row]),
            "reference": references.get(example_id, ""),
            "latency_ms": _finite(latencies[row]),
            "error": excerpt(errors[row]) or None,
            "regressed": False,
            "drops": [],
        }
        for example_id, item_scores, row in pairs
    ]


def _chosen_rows(columns: dict[str, list[Any]], benchmark_id: str, revision: str | None) -> dict[str, int]:
    """Each item's first sample as this run made or reused it: this run's rows first, then the newest."""
    runs, errors, created = columns["benchmark_id"], columns["error"], columns["created_at"]

    def preference(row: int) -> tuple[bool, bool, str]:
        return runs[row] == benchmark_id, errors[row] is None, created[row] or ""

    best: dict[str, int] = {}
    ids, samples, revisions = columns["example_id"], columns["sample_index"], columns["dataset_revision"]
    for row, (example_id, sample, row_revision) in enumerate(zip(ids, samples, revisions, strict=True)):
        if sample != 0 or (revision and row_revision not in (None, revision)):
            continue
        key = str(example_id)
        current = best.setdefault(key, row)
        if current != row and preference(row) > preference(current):
            best[key] = row
    return best


def _references(store: Store, task: str) -> dict[str, str]:
    """Gold answers by example id from the task's materialised examples (any revision; newest file wins)."""
    directory = store.path("examples")
    if not store.exists(directory):
        return {}
    pattern = re.compile(re.escape(partition_name(task)) + r"-[0-9a-f]{16}\.parquet")
    files = [
        f for f in store.fs.ls(directory, detail=True) if pattern.fullmatch(f["name"].rsplit("/", 1)[-1])
    ]
    encoded: dict[str, str | None] = {}
    for info in sorted(files, key=lambda f: f.get("mtime") or f.get("LastModified") or 0):
        table = store.read_table(info["name"], columns=["example_id", "references"])
        if table is not None:
            ids = map(str, table.column("example_id").to_pylist())
            encoded.update(zip(ids, table.column("references").to_pylist(), strict=True))
    return {example_id: excerpt(_reference_text(value)) for example_id, value in encoded.items()}


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
