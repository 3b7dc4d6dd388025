"""Pairwise judge metrics: the candidate's answer against the baseline's, in both orders, after both ran.

Each item (and epoch) is judged twice, candidate as A then as B, so a judge's preference for a
position cancels: the candidate wins the item only if both orders prefer it, loses only if both prefer
the baseline, and anything else (a tie, or orders that disagree) is a tie. An item scores 100 for a
win, 50 for a tie, 0 for a loss (the mean over epochs); the win rate is the mean over items with a
bootstrap interval over items.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

import numpy as np

from benchgate.evaltasks import make_task
from benchgate.evaltasks.base import EvalTask
from benchgate.judges.calls import JudgeCalls, Template, base_variables
from benchgate.providers import create_provider
from benchgate.run.cache_keys import GenerationKeys
from benchgate.run.evaluation import prepare_examples
from benchgate.spec.example import Example
from benchgate.spec.judge import PairwiseMetric, judge_metrics
from benchgate.spec.request import BenchmarkRequest
from benchgate.store import Store
from scorers.stats import bootstrap_ci

log = logging.getLogger(__name__)
NOT_COMPARED = {"value": math.nan, "ci_low": math.nan, "ci_high": math.nan, "n": 0}
OUTCOME = {("a", "b"): 100.0, ("b", "a"): 0.0}  # (first order, second order) with the candidate as A first


def pairwise_metrics(request: BenchmarkRequest, task: str) -> list[PairwiseMetric]:
    return [m for _, m in judge_metrics(request.task(task).metrics) if isinstance(m, PairwiseMetric)]


async def compare(
    request: BenchmarkRequest, task_name: str, result: dict[str, Any], benchmark_id: str, store: Store
) -> dict[str, Any]:
    """The candidate's result with its win rates filled in (its stored per-item scores too)."""
    spec = request.task(task_name)
    task = make_task(spec, require_isolation=request.sandbox == "required")
    info = await asyncio.to_thread(prepare_examples, store, task)
    with store.open_examples(info.digest) as file:
        examples = file.read_groups(range(info.n_shards))
    scores = store.read_scores(benchmark_id, result["model_id"], task_name)
    if scores is not None:  # items that already erred are not judged (nor counted twice)
        scored = set(scores["example_id"])
        examples = [e for e in examples if e.example_id in scored]
    calls = JudgeCalls(request, task_name, info.dataset, benchmark_id, store)
    errors: set[str] = set()
    try:
        for metric in pairwise_metrics(request, task_name):
            if metric.baseline == result["model_id"]:  # the baseline has no win rate against itself
                result["metrics"][metric.metric_name] = NOT_COMPARED
                continue
            assert metric.baseline is not None  # validated
            candidate = await answers(request, task, result["model_id"], examples, info.revision, store)
            baseline = await answers(request, task, metric.baseline, examples, info.revision, store)
            values, failed = await _judge(calls, metric, task, examples, candidate, baseline)
            errors |= failed
            per_item = [values.get(i, np.nan) for i in scores["example_id"]] if scores is not None else []
            if scores is not None:
                scores[metric.metric_name] = per_item
            observed = np.array([v for v in per_item if not np.isnan(v)])
            low, high = bootstrap_ci(observed) if len(observed) else (np.nan, np.nan)
            mean = float(observed.mean()) if len(observed) else np.nan
            result["metrics"][metric.metric_name] = {
                "value": mean,
                "ci_low": low,
                "ci_high": high,
                "n": len(observed),
            }
    finally:
        await calls.aclose()
    if scores is not None:
        store.write_scores(benchmark_id, result["model_id"], task_name, scores)
    calls.errors = len(errors)
    result["judge"] = _merged(result.get("judge"), calls.details())
    if errors and result["n_items"]:
        result["n_errors"] += len(errors)
        result["error_rate"] = result["n_errors"] / result["n_items"]
        result["inconclusive"] = result["inconclusive"] or result["error_rate"] > request.error_budget
    return result


async def answers(
    request: BenchmarkRequest,
    task: EvalTask,
    model_id: str,
    examples: list[Example],
    revision: str,
    store: Store,
) -> dict[str, list[str]]:
    """A model's post-processed answers of this run, by item (every epoch), read back by cache key; an
    item missing an epoch (a failed generation) is left out."""
    spec = request.model(model_id)
    provider = create_provider(spec)
    try:
        endpoint = provider.endpoint
    finally:
        await provider.aclose()
    stored: dict[str, dict[str, Any]] = {}
    for row in store.read_generations(
        model_id, task.spec.task, ["cache_key", "output", "error", "created_at"]
    ):
        current = stored.get(row["cache_key"])
        if row["error"] is None and (current is None or row["created_at"] > current["created_at"]):
            stored[row["cache_key"]] = row
    found: dict[str, list[str]] = {}
    generation_keys = GenerationKeys(spec, endpoint, revision)
    for example in examples:
        keys = [
            generation_keys.key(example.messages, epoch) for epoch in range(task.spec.generations_per_item)
        ]
        if "problem" not in example.fields and all(key in stored for key in keys):
            found[example.example_id] = [task.postprocess(stored[key]["output"] or "") for key in keys]
    return found


async def _judge(
    calls: JudgeCalls,
    metric: PairwiseMetric,
    task: EvalTask,
    examples: list[Example],
    candidate: dict[str, list[str]],
    baseline: dict[str, list[str]],
) -> tuple[dict[str, float], set[str]]:
    """Per item, the mean over epochs of 100 (win), 50 (tie) or 0 (loss); and the items with judge errors."""
    template = Template(metric.template)
    prompts: dict[str, str] = {}
    failed: set[str] = set()
    for example in examples:
        item = example.example_id
        if item not in candidate or item not in baseline:
            continue
        for epoch, (mine, theirs) in enumerate(zip(candidate[item], baseline[item], strict=True)):
            variables = base_variables(example)
            try:
                prompts[f"{item}~{epoch}~ab"] = template.render(
                    {**variables, "answer_a": mine, "answer_b": theirs}
                )
                prompts[f"{item}~{epoch}~ba"] = template.render(
                    {**variables, "answer_a": theirs, "answer_b": mine}
                )
            except ValueError as error:
                log.warning("%s: item %s: %s", task.spec.task, item, error)
                failed.add(item)
    verdicts: dict[tuple[str, str], dict[str, str]] = {}
    for prompt_id, row in (await calls.ask(metric.judge, prompts)).items():
        item, sample, order = prompt_id.rsplit("~", 2)
        try:
            if row["error"] is not None:
                raise ValueError(f"the judge call failed: {row['error']}")
            verdicts.setdefault((item, sample), {})[order] = metric.parse(row["output"] or "")
        except ValueError as error:
            log.warning("%s: item %s: judge error (%s): %s", task.spec.task, item, metric.metric_name, error)
            failed.add(item)
    outcomes: dict[str, list[float]] = {}
    for (item, _), orders in verdicts.items():
        outcomes.setdefault(item, []).append(OUTCOME.get((orders.get("ab", ""), orders.get("ba", "")), 50.0))
    return {item: float(np.mean(v)) for item, v in outcomes.items() if item not in failed}, failed


def _merged(before: dict[str, Any] | None, after: dict[str, Any]) -> dict[str, Any]:
    """Rubric and pairwise judge totals of one (model, task) as one `judge` entry of its details."""
    if before is None:
        return after
    cost = [c for c in (before["cost_usd"], after["cost_usd"]) if c is not None]
    return {
        "models": sorted(set(before["models"]) | set(after["models"])),
        "requests": before["requests"] + after["requests"],
        "reused": before["reused"] + after["reused"],
        "errors": before["errors"] + after["errors"],
        "tokens": {k: before["tokens"][k] + after["tokens"][k] for k in ("input", "output")},
        "cost_usd": sum(cost) if cost else None,
    }
