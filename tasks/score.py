"""Prefect task: score one shard's generations (CPU work off the event loop), reusing earlier scores."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from benchgate.evaltasks.base import EvalTask
from benchgate.run.evaluation import score_key, score_shard_reusing
from benchgate.spec.example import Example
from benchgate.store import Store

if TYPE_CHECKING:  # pandas (0.25 s) is not imported at start-up (a run imports it ahead)
    import pandas as pd


@task(
    name="score",
    task_run_name="score · {eval_task.spec.task} · shard {shard}",
    retries=1,
    cache_policy=NO_CACHE,
)
async def score(
    eval_task: EvalTask,
    shard: int,
    examples: Sequence[Example],
    rows: list[dict[str, Any]],
    store: Store,
    examples_digest: str,
    groups: range,
) -> pd.DataFrame:
    """The store's content-addressed scores are the cache (same examples, same outputs), not Prefect's."""

    def run() -> pd.DataFrame:
        key = score_key(eval_task, examples_digest, groups, rows)
        return score_shard_reusing(store, eval_task, key, examples, rows)

    return await asyncio.to_thread(run)
