"""Pairwise judge metrics in the benchmark flow: once every model's answers exist, before the report."""

from __future__ import annotations

import functools
from typing import Any

from benchgate.judges.pairwise import NOT_COMPARED, pairwise_metrics
from benchgate.spec.request import BenchmarkRequest
from benchgate.store import Store
from flows.concurrency import bounded_gather
from tasks.judge import pairwise

MAX_CONCURRENT_COMPARISONS = 4


async def compare_pairwise(
    request: BenchmarkRequest, results: list[dict[str, Any]], benchmark_id: str, store: Store
) -> list[dict[str, Any]]:
    """Results with win rates filled in for each candidate; a baseline has none against itself (n=0)."""
    jobs, positions = [], []
    for position, result in enumerate(results):
        metrics = pairwise_metrics(request, result["task"]) if result["failure"] is None else []
        if not metrics:
            continue
        if all(m.baseline == result["model_id"] for m in metrics):
            for metric in metrics:
                result["metrics"][metric.metric_name] = dict(NOT_COMPARED)
            continue
        jobs.append(functools.partial(pairwise, request, result["task"], result, benchmark_id, store))
        positions.append(position)
    for position, compared in zip(
        positions, await bounded_gather(jobs, MAX_CONCURRENT_COMPARISONS), strict=True
    ):
        results[position] = compared
    return results
