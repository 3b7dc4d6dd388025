"""Prefect task: score one shard's generations (CPU work off the event loop)."""

from __future__ import annotations

import asyncio
from typing import Any

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from benchgate.evaltasks.base import EvalTask
from benchgate.run.evaluation import score_shard
from benchgate.spec.example import Example


@task(
    name="score",
    task_run_name="score · {eval_task.spec.task} · shard {shard}",
    retries=1,
    cache_policy=NO_CACHE,
)
async def score(
    eval_task: EvalTask, shard: int, examples: list[Example], rows: list[dict[str, Any]]
) -> pd.DataFrame:
    return await asyncio.to_thread(score_shard, eval_task, examples, rows)
