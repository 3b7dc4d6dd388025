"""Shards scored in a process forked beside the run, so that the event loop keeps the interpreter.

A run at high concurrency is CPU-bound in one process. Scored in a thread, a shard took the
interpreter from the event loop in 5 ms slices while a hundred answers waited to be read: at
50,000 items and C=128 the loop stalled for 0.1-0.35 s at the end of every shard. `benchgate run`
forks one worker after its imports and before its first thread (`forked`); shards are scored there,
on another core, and the loop only sends each answer's id, sample, error flag and text (the worker
reads the shard's examples from the store's examples file, as the producer did). Where no worker
was started (a Prefect worker, the API's runs, tests, other platforms) or it died, a shard is scored
in a thread of the run's own process: the same code, the same scores.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from benchgate.evaltasks import make_task
from benchgate.evaltasks.base import EvalTask
from benchgate.run.evaluation import score_key, score_shard_reusing
from benchgate.run.forked import can_fork, die_with_parent
from benchgate.spec.example import Example
from benchgate.spec.request import TaskSpec
from benchgate.store import Store

if TYPE_CHECKING:
    import pandas as pd

ANSWER_FIELDS = ("example_id", "sample_index", "error", "output")  # what scoring reads of a row

_worker: ProcessPoolExecutor | None = None
_tasks: dict[tuple[str, bool], EvalTask] = {}  # in the worker: each task built once
_stores: dict[str, Store] = {}


@contextmanager
def forked() -> Iterator[bool]:
    """A worker for the shards scored inside, if this process can fork now (Linux, no other thread
    yet); yields whether it runs. On the way out the worker is waited for: a child the run reaps
    counts in the run's CPU time."""
    global _worker
    if _worker is None and can_fork():
        context = multiprocessing.get_context("fork")
        pool = ProcessPoolExecutor(1, mp_context=context, initializer=_init_worker, initargs=(os.getpid(),))
        pool.submit(int).result()  # forks here (the pool's own threads start after the fork)
        _worker = pool
    try:
        yield _worker is not None
    finally:
        _stop()


def _stop() -> None:
    global _worker
    pool, _worker = _worker, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


def _init_worker(parent: int) -> None:
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the run's to handle: it stops the worker


async def score_outside_loop(
    eval_task: EvalTask,
    store: Store,
    examples_digest: str,
    groups: range,
    examples: list[Example],
    rows: list[dict[str, Any]],
) -> pd.DataFrame:
    """The shard's per-item scores, reused from the store when the same answers were scored before."""
    answers = [{field: row[field] for field in ANSWER_FIELDS} for row in rows]
    pool = _worker
    if pool is not None:
        try:
            return await asyncio.get_running_loop().run_in_executor(
                pool,
                _score_in_worker,
                eval_task.spec,
                eval_task.require_isolation,
                store.url,
                examples_digest,
                groups,
                answers,
            )
        except BrokenProcessPool:  # the worker died (killed, out of memory): score here from now on
            _stop()
    return await asyncio.to_thread(_score, eval_task, store, examples_digest, groups, examples, answers)


def _score(
    eval_task: EvalTask,
    store: Store,
    examples_digest: str,
    groups: range,
    examples: list[Example],
    answers: list[dict[str, Any]],
) -> pd.DataFrame:
    key = score_key(eval_task, examples_digest, groups, answers)
    return score_shard_reusing(store, eval_task, key, examples, answers)


def _score_in_worker(
    spec: TaskSpec,
    require_isolation: bool,
    store_url: str,
    examples_digest: str,
    groups: range,
    answers: list[dict[str, Any]],
) -> pd.DataFrame:
    task_key = (spec.model_dump_json(), require_isolation)
    eval_task = _tasks.get(task_key)
    if eval_task is None:
        eval_task = _tasks[task_key] = make_task(spec, require_isolation=require_isolation)
    store = _stores.get(store_url) or _stores.setdefault(store_url, Store(store_url))
    examples_file = store.open_examples(examples_digest)
    try:
        examples = [example for group in groups for example in examples_file.read_group(group)]
    finally:
        examples_file.close()
    return _score(eval_task, store, examples_digest, groups, examples, answers)
