"""Prefect tasks: judge metrics, one per shard (rubric) or per model x task (pairwise), never one per item."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from benchgate.judges import RubricJudging, compare
from benchgate.spec.example import Example
from benchgate.spec.request import BenchmarkRequest
from benchgate.store import Store

if TYPE_CHECKING:  # pandas (0.25 s) is not imported at start-up (a run imports it ahead)
    import pandas as pd


@task(name="judge", task_run_name="judge · shard {shard}", retries=1, cache_policy=NO_CACHE)
async def judge(
    judging: RubricJudging,
    shard: int,
    examples: Sequence[Example],
    rows: list[dict[str, Any]],
    scores: pd.DataFrame,
) -> pd.DataFrame:
    """The shard's scores with its rubric columns; a retry reuses every verdict already journaled."""
    return await judging.judge_shard(examples, rows, scores)


@task(
    name="pairwise",
    task_run_name="pairwise · {result[model_id]} · {task_name}",
    retries=1,
    cache_policy=NO_CACHE,
)
async def pairwise(
    request: BenchmarkRequest, task_name: str, result: dict[str, Any], benchmark_id: str, store: Store
) -> dict[str, Any]:
    return await compare(request, task_name, result, benchmark_id, store)
