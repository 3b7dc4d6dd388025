"""Prefect task: score one shard's generations (off the event loop), reusing earlier scores."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from benchgate.evaltasks.base import EvalTask
from benchgate.run import scoring_worker
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
    examples: list[Example],
    rows: list[dict[str, Any]],
    store: Store,
    examples_digest: str,
    groups: range,
) -> pd.DataFrame:
    """The store's content-addressed scores are the cache (same examples, same outputs), not Prefect's."""
    return await scoring_worker.score_outside_loop(eval_task, store, examples_digest, groups, examples, rows)
