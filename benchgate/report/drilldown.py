"""Drill-down: which items moved, and how far, between a model and its baseline on one metric.

A failed or warned rule is one number; a reviewer needs the items behind it. Items are paired by
example_id (as the gate pairs them), counted as improved, worse or unchanged in the metric's
direction, and the few that moved most each way are kept with short excerpts of prompt, reference
and both answers. The gate attaches drill-downs to its verdicts (gate.json, report.md, a Prefect
table artifact); `benchgate diff` computes the same between any two stored runs.
"""

from __future__ import annotations

import unicodedata
from typing import Any

import pandas as pd

from benchgate.errors import RequestError, StoreError
from benchgate.report.items import RunItems, load_items, scored_pairs
from benchgate.spec.gate import BASELINE
from benchgate.spec.report import DETAIL_METRICS, Drilldown, GateDecision, MovedItem, Report, Verdict
from benchgate.store import Store

EXCERPT_CHARS = 80
TOP_ITEMS = 10  # each way
UNCHANGED = 1e-9  # score differences within this are float noise, not movement


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """One line of at most ``limit`` characters; control and format characters (terminal escapes,
    bidi overrides) are dropped, since the text is the model's and is printed and rendered."""
    visible = "".join(c for c in text if unicodedata.category(c) not in ("Cc", "Cf") or c.isspace())
    flat = " ".join(visible.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def drilldown(
    items: RunItems,
    baseline: RunItems,
    metric: str,
    *,
    higher_is_better: bool,
    model_label: str | None = None,
    baseline_label: str | None = None,
    top: int = TOP_ITEMS,
) -> Drilldown:
    """``items`` against ``baseline`` over the items both scored on ``metric``."""
    # Fixed column names: metric names (exact-match, pass@1) are not attribute names for itertuples.
    joined = (
        items.scores[["example_id", metric]]
        .rename(columns={metric: "score"})
        .merge(
            baseline.scores[["example_id", metric]].rename(columns={metric: "baseline_score"}),
            on="example_id",
        )
        .dropna()
        .drop_duplicates("example_id")
    )
    joined["change"] = joined["score"] - joined["baseline_score"]
    joined["gain"] = joined["change"] if higher_is_better else -joined["change"]
    ordered = joined.sort_values(["gain", "example_id"])
    worse = ordered[ordered["gain"] < -UNCHANGED]
    improved = ordered[ordered["gain"] > UNCHANGED].sort_values(
        ["gain", "example_id"], ascending=[False, True]
    )

    def moved(rows: pd.DataFrame) -> list[MovedItem]:
        return [
            MovedItem(
                example_id=row.example_id,
                score=float(row.score),
                baseline_score=float(row.baseline_score),
                change=float(row.change),
                prompt=excerpt(items.prompt(row.example_id) or baseline.prompt(row.example_id)),
                reference=excerpt(items.reference(row.example_id) or baseline.reference(row.example_id)),
                output=excerpt(items.answer(row.example_id)),
                baseline_output=excerpt(baseline.answer(row.example_id)),
            )
            for row in rows.head(top).itertuples(index=False)
        ]

    return Drilldown(
        task=items.task,
        metric=metric,
        model=model_label or items.model,
        baseline=baseline_label or baseline.model,
        higher_is_better=higher_is_better,
        improved=len(improved),
        worse=len(worse),
        unchanged=len(joined) - len(improved) - len(worse),
        most_worse=moved(worse),
        most_improved=moved(improved),
    )


def attach_drilldowns(
    decision: GateDecision, report: Report, gate_baseline: str | None, store: Store
) -> None:
    """Give every failed or warned rule on a per-item metric its drill-down against the rule's
    reference model (absolute rules: the gate's baseline, when the report has one). A pair whose items
    are not stored gets none: the verdict already says what is missing."""
    loaded: dict[tuple[str, str], RunItems | None] = {}

    def items_of(model: str, task: str) -> RunItems | None:
        if (model, task) not in loaded:
            try:
                loaded[model, task] = load_items(store, report, model, task)
            except StoreError:
                loaded[model, task] = None
        return loaded[model, task]

    for verdict in decision.rules:
        if verdict.verdict not in (Verdict.FAIL, Verdict.WARN) or verdict.metric in DETAIL_METRICS:
            continue
        baseline = verdict.reference or (gate_baseline if gate_baseline != BASELINE else None)
        if baseline is None or baseline == verdict.model or report.row(verdict.task, baseline) is None:
            continue
        candidate, reference = items_of(verdict.model, verdict.task), items_of(baseline, verdict.task)
        if candidate is None or reference is None:
            continue
        if verdict.metric not in candidate.scores or verdict.metric not in reference.scores:
            continue
        details = report.pair_details(verdict.task, verdict.model)
        verdict.drilldown = drilldown(
            candidate,
            reference,
            verdict.metric,
            higher_is_better=details.higher_is_better.get(verdict.metric, True),
        )


def diff_runs(
    baseline: Report, report: Report, store: Store, *, task: str | None = None, metric: str | None = None
) -> list[Drilldown]:
    """Each model both runs scored, per task and metric: ``report``'s items against ``baseline``'s.

    RequestError for an unknown task or metric, or when the runs share no scored item at all.
    """
    tasks = [name for name in report.report if name in baseline.report]
    if task is not None and task not in tasks:
        raise RequestError([f"--task: {task!r} is not a task of both runs (common tasks: {_names(tasks)})"])
    in_baseline = set(scored_pairs(baseline))
    pairs = [pair for pair in scored_pairs(report, task) if pair in in_baseline]
    if not pairs:
        raise RequestError(
            [f"{baseline.benchmark_id} and {report.benchmark_id} have no model scored on a common task"]
        )
    metrics = {name: [m for m in report.metrics(name) if m in baseline.metrics(name)] for name, _ in pairs}
    known = sorted({m for names in metrics.values() for m in names})
    if metric is not None and metric not in known:
        raise RequestError([f"--metric: {metric!r} is not scored in both runs (metrics: {_names(known)})"])
    drilldowns = []
    for name, model in pairs:
        chosen = [m for m in sorted(metrics[name]) if metric is None or m == metric]
        if not chosen:
            continue
        items, reference = load_items(store, report, model, name), load_items(store, baseline, model, name)
        details = report.pair_details(name, model)
        drilldowns += [
            drilldown(
                items,
                reference,
                m,
                higher_is_better=details.higher_is_better.get(m, True),
                model_label=f"{model} @ {report.benchmark_id}",
                baseline_label=f"{model} @ {baseline.benchmark_id}",
            )
            for m in chosen
            if m in items.scores and m in reference.scores
        ]
    if not any(d.paired for d in drilldowns):
        raise RequestError(
            [f"{baseline.benchmark_id} and {report.benchmark_id} have no scored item in common"]
        )
    return drilldowns


def drilldown_rows(decision: GateDecision) -> list[dict[str, Any]]:
    """The drill-downs of a decision as table rows (the Prefect UI's table artifact)."""
    return [
        {
            "rule": verdict.rule,
            "task": d.task,
            "metric": d.metric,
            "direction": direction,
            **item.model_dump(),
            "model": d.model,
            "baseline": d.baseline,
        }
        for verdict in decision.rules
        if (d := verdict.drilldown) is not None
        for direction, moved in (("worse", d.most_worse), ("improved", d.most_improved))
        for item in moved
    ]


def _names(names: list[str]) -> str:
    return ", ".join(names) or "none"
