"""One model x evaluation task, as plain library steps the Prefect tasks wrap."""

from __future__ import annotations

import hashlib
import importlib
import itertools
import json
import math
import sys
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from benchgate import __version__, jsonio
from benchgate.evaltasks.base import EvalTask
from benchgate.run.cache_keys import digest
from benchgate.spec.example import Example
from benchgate.spec.request import ModelSpec
from benchgate.store import Store
from scorers.stats import BootstrapCounts, bootstrap_ci

if TYPE_CHECKING:  # pandas (0.25 s) is not imported at start-up (a run imports it ahead)
    import pandas as pd

DEFAULT_SHARD_SIZE = 100  # items per row group of the examples file: what is read into memory at once
EXAMPLES_FORMAT = 2  # 2: built-in examples carry fields["kind"]
ITEMS_PER_SHARD = 1000  # a Prefect shard (a generate and a score task) spans about this many items ...
MAX_SHARDS = 8  # ... but a model x task has at most this many: task runs cost more than they show
SCORES_FORMAT = 1  # bump when scoring changes what it returns for the same outputs


def import_pandas_ahead() -> None:
    """Import pandas (0.25 s of CPU) in a thread while the model answers the first requests, or
    while the command waits for its temporary Prefect server. Left to the first shard's scoring, the
    import held the interpreter while a hundred answers waited to be read (C=128, 100 ms: span
    efficiency 0.80-0.83 with it there, 0.86 imported ahead)."""
    if "pandas" not in sys.modules:
        threading.Thread(target=importlib.import_module, args=("pandas",), name="import-pandas").start()


@dataclass(frozen=True)
class ExamplesInfo:
    digest: str
    dataset: str
    revision: str
    n_examples: int
    n_shards: int


def prepare_examples(store: Store, task: EvalTask) -> ExamplesInfo:
    """Materialise the examples once per (task definition, dataset revision); later runs reuse the file."""
    spec = task.spec
    loaded = task.load()
    shard_size = spec.shard_size or DEFAULT_SHARD_SIZE
    material = {"spec": spec.model_dump(mode="json"), "revision": loaded.revision, "format": EXAMPLES_FORMAT}
    key = f"{spec.task}-{digest(material)}"
    if not store.examples_readable(key):
        store.write_examples(key, loaded.examples, shard_size)
    n_examples, n_shards = store.example_counts(key)
    return ExamplesInfo(key, loaded.name, loaded.revision, n_examples, n_shards)


def plan_shards(info: ExamplesInfo, shard_size: int | None) -> list[range]:
    """Row groups of the examples file per Prefect shard.

    Prefect records the units a person watches and retries, so a model x task gets a handful of
    shards chosen from its size; a request's own `shard_size` keeps one row group per shard.
    """
    if shard_size is not None or info.n_shards <= 1:
        return [range(group, group + 1) for group in range(info.n_shards)]
    count = min(info.n_shards, MAX_SHARDS, max(1, math.ceil(info.n_examples / ITEMS_PER_SHARD)))
    bounds = [round(i * info.n_shards / count) for i in range(count + 1)]
    return [range(start, stop) for start, stop in itertools.pairwise(bounds)]


def score_key(task: EvalTask, examples_digest: str, groups: range, rows: list[dict[str, Any]]) -> str:
    """What a shard's scores depend on: its examples (the digest covers the task's metrics and
    post-processing), each sample's output or failure, and the scoring code's version."""
    material = {
        "examples": examples_digest,
        "groups": [groups.start, groups.stop],
        "isolation": task.require_isolation,
        "format": SCORES_FORMAT,
        "version": __version__,
    }
    answers = [
        [row["example_id"], row["sample_index"], row["error"] is None, row["output"]]
        for row in sorted(rows, key=_item_sample)
    ]
    hasher = hashlib.sha256(json.dumps(material, sort_keys=True).encode())
    hasher.update(jsonio.dumps(answers))
    return hasher.hexdigest()


def stored_shard_scores(
    store: Store, task: EvalTask, examples_digest: str, groups: range, rows: list[dict[str, Any]]
) -> pd.DataFrame | None:
    """The shard's scores if the same outputs were scored before, else None."""
    return store.read_shard_scores(task.spec.task, score_key(task, examples_digest, groups, rows))


def score_shard_reusing(
    store: Store, task: EvalTask, key: str, examples: Sequence[Example], rows: list[dict[str, Any]]
) -> pd.DataFrame:
    """The shard's scores from the store when the same outputs were scored before, else scored now
    and stored: a rerun with every answer cached recomputes nothing."""
    scores = store.read_shard_scores(task.spec.task, key)
    if scores is None:
        scores = score_shard(task, examples, rows)
        store.write_shard_scores(task.spec.task, key, scores)
    return scores


def _item_sample(row: dict[str, Any]) -> tuple[str, int]:
    return row["example_id"], int(row["sample_index"])


def score_shard(task: EvalTask, examples: Sequence[Example], rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Per-item scores for the items whose every sample was generated; errored items are left out."""
    by_example: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_example.setdefault(row["example_id"], []).append(row)
    errored = {row["example_id"] for row in rows if row["error"] is not None}
    complete = [e for e in examples if e.example_id in by_example and e.example_id not in errored]
    predictions = {
        e.example_id: [
            task.postprocess(r["output"] or "") for r in sorted(by_example[e.example_id], key=_sample)
        ]
        for e in complete
    }
    if not complete:
        import pandas as pd

        return pd.DataFrame(columns=["example_id", *(m.name for m in task.metrics())])
    return task.score_epochs(complete, predictions)


def _sample(row: dict[str, Any]) -> int:
    return int(row["sample_index"])


@dataclass
class TaskResult:
    """What one (model, evaluation task) contributes to the report."""

    model_id: str
    task: str
    dataset: str
    dataset_revision: str
    n_items: int = 0
    n: int = 0
    n_errors: int = 0
    error_rate: float = 0.0
    inconclusive: bool = False
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    higher_is_better: dict[str, bool] = field(default_factory=dict)
    per_item_kind: dict[str, str] = field(default_factory=dict)
    scales: dict[str, str] = field(default_factory=dict)
    latency_ms: dict[str, float | None] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)
    cost_usd: float | None = None
    requests: int = 0
    reused: int = 0
    failure: str | None = None
    breakdown: dict[str, float] = field(default_factory=dict)
    attempts: int = 0
    timeouts: int = 0
    latency_p95_with_timeouts_ms: float | None = None
    judge: dict[str, Any] | None = None  # judge metrics' calls, errors, tokens, cost (benchgate.judges)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Interval = tuple[float, float]
MAX_RESAMPLED_AHEAD = 10_000  # items; resamples drawn ahead take a byte per item and resample


def metric_values(task: EvalTask, scores: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each metric's per-item values, in the scores' order."""
    return {
        metric.name: scores[metric.name].to_numpy(dtype=float) if len(scores) else np.array([])
        for metric in task.metrics()
    }


def intervals(values: dict[str, np.ndarray], seed: int = 0) -> dict[str, Interval]:
    """Each metric's percentile bootstrap interval of the mean; NaN for no values."""
    return {
        name: bootstrap_ci(column, seed=seed) if len(column) else (math.nan, math.nan)
        for name, column in values.items()
    }


def resample_ahead(task: EvalTask, n_items: int) -> BootstrapCounts | None:
    """`intervals`' resamples of a unit's items, drawn while its model answers, for a binary metric
    (whole numbers: exact match's 0 and 100), whose interval they then give in milliseconds at the
    end of the run instead of 0.05-0.1 s. Up to MAX_RESAMPLED_AHEAD items (20 MB of counts)."""
    if not 2 <= n_items <= MAX_RESAMPLED_AHEAD or all(metric.kind != "binary" for metric in task.metrics()):
        return None
    return BootstrapCounts(n_items)


def intervals_resampled_ahead(
    resampled: BootstrapCounts | None, values: dict[str, np.ndarray]
) -> tuple[dict[str, Interval], dict[str, np.ndarray]]:
    """The intervals `resampled` gives (the same floats as `intervals`), and the values left for it."""
    computed: dict[str, Interval] = {}
    if resampled is not None:
        for name, column in values.items():
            interval = resampled.interval(column)
            if interval is not None:
                computed[name] = interval
    return computed, {name: column for name, column in values.items() if name not in computed}


def summarize(
    task: EvalTask,
    model: ModelSpec,
    info: ExamplesInfo,
    scores: pd.DataFrame,
    generation_stats: dict[str, Any],
    error_budget: float,
    computed: dict[str, Interval] | None = None,
) -> TaskResult:
    """The unit's result; its intervals as `computed` (by `intervals`, elsewhere), or computed here."""
    n_errors = info.n_examples - len(scores)
    result = TaskResult(
        model_id=model.id,
        task=task.spec.task,
        dataset=info.dataset,
        dataset_revision=info.revision,
        n_items=info.n_examples,
        n=len(scores),
        n_errors=n_errors,
        error_rate=n_errors / info.n_examples if info.n_examples else 0.0,
        requests=generation_stats["requests"],
        reused=generation_stats["reused"],
        attempts=generation_stats["attempts"],
        timeouts=generation_stats["timeouts"],
    )
    result.inconclusive = result.error_rate > error_budget or result.n == 0
    values_by_metric = metric_values(task, scores)
    if computed is None:
        computed = intervals(values_by_metric)
    for metric in task.metrics():
        values = values_by_metric[metric.name]
        low, high = computed[metric.name]
        mean = float(values.mean()) if len(values) else float("nan")
        result.metrics[metric.name] = {"value": mean, "ci_low": low, "ci_high": high, "n": len(values)}
        result.higher_is_better[metric.name] = metric.higher_is_better
        result.per_item_kind[metric.name] = metric.kind
        result.scales[metric.name] = metric.scale
    latencies = generation_stats["latencies"]
    result.latency_ms = {
        "p50": float(np.percentile(latencies, 50)) if latencies else None,
        "p95": float(np.percentile(latencies, 95)) if latencies else None,
    }
    # Timed-out attempts at the timeout they hit: the p95 above describes only what succeeded.
    with_timeouts = latencies + [model.timeout * 1000.0] * result.timeouts
    result.latency_p95_with_timeouts_ms = float(np.percentile(with_timeouts, 95)) if with_timeouts else None
    result.tokens = {"input": generation_stats["input_tokens"], "output": generation_stats["output_tokens"]}
    if model.price:
        result.cost_usd = (
            result.tokens["input"] * model.price.input_per_mtok
            + result.tokens["output"] * model.price.output_per_mtok
        ) / 1e6
    result.breakdown = task.breakdown(scores) if len(scores) else {}  # no item scored: nothing to split
    return result


class GenerationStats:
    """Running totals over a model x task's generations, so rows need not be kept."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.input_tokens = 0
        self.output_tokens = 0
        self.requests = 0
        self.reused = 0
        self.attempts = 0
        self.timeouts = 0

    def add(self, rows: list[dict[str, Any]], requests: int, reused: int) -> None:
        self.requests += requests
        self.reused += reused
        for row in rows:
            # Reused rows come from the store without them: they cost no attempt in this run.
            self.attempts += row.get("attempts", 0)
            self.timeouts += row.get("timeouts", 0)
            if row["error"] is None:
                self.latencies.append(float(row["latency_ms"]))
                self.input_tokens += int(row["input_tokens"] or 0)
                self.output_tokens += int(row["output_tokens"] or 0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "latencies": self.latencies,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "requests": self.requests,
            "reused": self.reused,
            "attempts": self.attempts,
            "timeouts": self.timeouts,
        }
