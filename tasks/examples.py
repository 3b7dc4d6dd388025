"""Prefect task: materialise an evaluation task's examples in the store (reused across runs)."""

from __future__ import annotations

import asyncio

from prefect import task
from prefect.cache_policies import NO_CACHE

from benchgate.errors import DatasetError
from benchgate.evaltasks.base import EvalTask
from benchgate.run.evaluation import ExamplesInfo, prepare_examples
from benchgate.store import Store


@task(name="load-examples", task_run_name="load · {eval_task.spec.task}", retries=2, cache_policy=NO_CACHE)
async def load_examples(eval_task: EvalTask, store: Store) -> ExamplesInfo | DatasetError:
    """The store file is the cache (keyed by task definition and dataset revision), not Prefect's.

    A dataset that cannot be read is returned, not raised: it is the user's to fix (the message says
    how), so it is neither retried nor logged as a crash with a traceback.
    """
    try:
        return await asyncio.to_thread(prepare_examples, store, eval_task)
    except DatasetError as error:
        return error
