"""Prefect task: materialise an evaluation task's examples in the store (reused across runs)."""

from __future__ import annotations

import asyncio

from prefect import task
from prefect.cache_policies import NO_CACHE

from benchgate.evaltasks.base import EvalTask
from benchgate.evaluation import ExamplesInfo, prepare_examples
from benchgate.store import Store


@task(name="load-examples", task_run_name="load · {eval_task.spec.task}", retries=2, cache_policy=NO_CACHE)
async def load_examples(eval_task: EvalTask, store: Store) -> ExamplesInfo:
    """The store file is the cache (keyed by task definition and dataset revision), not Prefect's."""
    return await asyncio.to_thread(prepare_examples, store, eval_task)
