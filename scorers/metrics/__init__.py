"""The metric registry shared by the built-in and the custom evaluation tasks.

Each metric is one `Metric` entry (entry.py) in one module of this package, and `_MODULES` below is
the index: adding a metric is a module with its entry, one line here, and its test in
tests/scorers/test_metrics.py (which also checks the entry's worked example). The order of the index
is the order `benchgate tasks` and error messages list the metrics in.

Callers dispatch through the entry's fields (scorer, checks, kind, needs); nothing outside a metric's
module branches on its name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from scorers.metrics import (
    containment,
    execution,
    json_value,
    multiple_choice,
    numeric,
    pattern,
    rouge_overlap,
    token_overlap,
)
from scorers.metrics.entry import Batch, BatchScorer, Metric, ReferenceProblem

__all__ = [
    "METRICS",
    "Batch",
    "Metric",
    "ReferenceProblem",
    "lookup",
    "option_problems",
    "reference_problem",
    "score_batch",
    "score_item",
]

_MODULES = (
    token_overlap,
    rouge_overlap,
    containment,
    pattern,
    numeric,
    json_value,
    multiple_choice,
    execution,
)
METRICS: dict[str, Metric] = {metric.name: metric for module in _MODULES for metric in module.METRICS}


def lookup(name: str) -> Metric | None:
    """The registry entry for a report name: 'pass@10' is the pass@k metric."""
    return METRICS.get(name) or next((m for m in METRICS.values() if m.reports(name)), None)


def option_problems(name: str, options: Mapping[str, Any]) -> list[str]:
    """What is wrong with a metric's options in a request, as messages."""
    metric = METRICS[name]
    problems = [
        f"unknown option {key!r} for {name}"
        + (f" (options: {', '.join(metric.options)})" if metric.options else " (it takes none)")
        for key in options
        if key not in metric.options
    ]
    problems.extend(f"{name} needs option {key!r}" for key in metric.required if key not in options)
    if metric.check_options is not None:
        problems.extend(metric.check_options(options))
    return problems


def reference_problem(
    name: str, references: Sequence[str], fields: Mapping[str, Any] | None = None
) -> str | None:
    """Why an item's references cannot be scored by a metric (checked before any model is called)."""
    check = METRICS[name].check_references
    try:
        if check is not None:
            check(references, fields or {})
    except ReferenceProblem as problem:
        return str(problem)
    return None


def score_item(
    name: str,
    prediction: str,
    references: Sequence[str],
    options: Mapping[str, Any] | None = None,
    fields: Mapping[str, Any] | None = None,
) -> float:
    """One item's value (report scale) for a metric scored per item; raises ReferenceProblem."""
    scorer = METRICS[name].score
    if scorer is None:
        raise ValueError(f"{name} is scored over a batch of items (score_batch), not per item")
    return scorer(prediction, references, options or {}, fields or {})


def score_batch(metrics: Sequence[Metric], batch: Batch) -> list[dict[str, float]]:
    """Per item, the columns of the batch-scored `metrics`; a batch scorer they share is called once."""
    scorers: dict[BatchScorer, list[str]] = {}
    for metric in metrics:
        if metric.score_batch is None:
            raise ValueError(f"{metric.name} is scored per item (score_item), not over a batch")
        scorers.setdefault(metric.score_batch, []).extend(metric.columns(batch.ks))
    rows: list[dict[str, float]] = [{} for _ in batch.predictions]
    for scorer, columns in scorers.items():
        for row, values in zip(rows, scorer(batch), strict=True):
            row.update({column: values[column] for column in columns if column in values})
    return rows
