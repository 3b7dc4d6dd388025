"""A model x task's generation, set up once: its lock on the store, its provider, its producer.

The evaluate subflow takes one per model x task. Under `benchgate run` they live in the generation
process (benchgate/run/generator_process.py), which starts the first ones itself as soon as it is
forked, before the command imports Prefect and while a temporary server boots (a head start): the
model's first requests go out in a fraction of a second, not after the seconds Prefect takes to
start, and the subflow adopts the generation under way instead of starting its own. The subflow
still records what people watch (its shards' tasks, progress, artifacts); only the model's first
answers come earlier.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

from benchgate.errors import DatasetError
from benchgate.evaltasks import make_task
from benchgate.evaltasks.base import EvalTask
from benchgate.providers import create_provider
from benchgate.providers.base import Provider
from benchgate.run.engine import ShardContext, ShardGenerations, ShardProducer
from benchgate.run.evaluation import ExamplesInfo, plan_shards, prepare_examples
from benchgate.spec.request import BenchmarkRequest, ModelSpec
from benchgate.store import Store, partition_name

HeadStartKey = tuple[str, str, str]  # benchmark id, model id, task name
ApiKeys = Mapping[str, "str | None"]  # model id -> its key, resolved by the command
_HEAD_STARTS: ContextVar[dict[HeadStartKey, asyncio.Task[Generation | DatasetError]] | None] = ContextVar(
    "benchgate_head_starts", default=None
)


def shards_in_flight(concurrency: int, shard_size: int) -> int:
    """Shard tasks at once (collecting, persisting, scoring); generation runs ahead of them."""
    return math.ceil(4 * concurrency / max(1, shard_size)) + 1


def items_ahead(concurrency: int, shard_size: int) -> int:
    """Unfinished requests the producer keeps started: every slot busy, plus items asleep in backoff."""
    return max(16 * concurrency, 2 * shard_size)


def examples_untaken(concurrency: int, shard_size: int) -> int:
    """Examples of earlier shards the producer may start before their tasks take them.

    The first shards are taken only once the command has imported Prefect and created its flow runs,
    seconds after the head start's first requests. At 16 x C, 2,048 items at C=128, generation ran
    into the bound and stopped for 0.4-1.2 s of a 5,000-item run with a running server (its span
    efficiency 0.64-0.85). 64 x C is five seconds of answers at 100 ms.

    With the embedded default the temporary server boots on the cores the generation uses: at 50,000
    items, 20 ms and C=128 it answered 12-16 s after the command started, and generation, stopped at
    two shards (18,800 examples), waited 4-5 s of a 25 s run for it; raised only until the first
    take, the bound stopped it again once the first shards were taken with 40,000 untaken. So no
    dataset under 65,536 examples waits for its shards' tasks: with 42,000 untaken the generation
    process held 295 MiB, against 218 with the 18,800. Beyond 262,144 examples two shards are more,
    and the bound is theirs, as before: memory at scale is unchanged.
    """
    return max(64 * concurrency, 2 * shard_size, 65_536)


class ShardSource(Protocol):
    """What the evaluate subflow drives: a `Generation` here, or one in the generation process."""

    info: ExamplesInfo
    context: ShardContext
    shards: list[range]
    shards_in_flight: int

    async def take(self, shard: int) -> ShardGenerations: ...

    async def take_reused(self, shard: int) -> ShardGenerations | None:
        """The shard, taken, if it is produced and every answer in it came from the store; else None
        and the shard stays for `take`."""

    async def items_done(self) -> int: ...

    async def aclose(self) -> None: ...


class HeadStartFailed(Exception):
    """The generation started ahead failed (a transient error reading the dataset, say): the
    subflow starts its own, through its retried tasks."""


@dataclass
class Generation:
    """A model x task's producer, running ahead of its shards' Prefect tasks, and what it holds."""

    info: ExamplesInfo
    context: ShardContext
    provider: Provider
    shards: list[range]
    shards_in_flight: int
    producer: ShardProducer
    _resources: contextlib.AsyncExitStack

    @classmethod
    async def start(
        cls,
        request: BenchmarkRequest,
        model: ModelSpec,
        eval_task: EvalTask,
        info: ExamplesInfo,
        benchmark_id: str,
        store: Store,
        api_keys: ApiKeys | None = None,
    ) -> Generation:
        """Waits while another run holds this model x task on the store, then starts generating."""
        spec = eval_task.spec
        resources = contextlib.AsyncExitStack()
        try:
            # A second run of this model x task waits here, then reuses the first one's answers.
            await resources.enter_async_context(
                store.exclusive(
                    "generations", f"model={partition_name(model.id)}", f"task={partition_name(spec.task)}"
                )
            )
            cached = store.reusable_generations(model.id, spec.task) if request.cache == "reuse" else {}
            context = ShardContext(
                benchmark_id, spec.task, info.dataset, info.revision, spec.generations_per_item, request.cache
            )
            provider = create_provider(model, api_keys)
            resources.push_async_callback(provider.aclose)
            examples_file = store.open_examples(info.digest)
            resources.callback(examples_file.close)
            shards = plan_shards(info, spec.shard_size)
            shard_items = (spec.shard_size or 100) * max((len(groups) for groups in shards), default=1)
            producer = ShardProducer(
                provider,
                context,
                cached,
                store,
                examples_file.read_group,
                shards,
                max_items_ahead=items_ahead(model.concurrency, shard_items),
                max_examples_untaken=examples_untaken(model.concurrency, shard_items),
            )
            resources.push_async_callback(producer.aclose)
            producer.start()
        except BaseException:
            await resources.aclose()
            raise
        in_flight = shards_in_flight(model.concurrency, shard_items)
        return cls(info, context, provider, shards, in_flight, producer, resources)

    async def take(self, shard: int) -> ShardGenerations:
        return await self.producer.take(shard)

    async def take_reused(self, shard: int) -> ShardGenerations | None:
        return await self.producer.take(shard) if self.producer.reused_whole(shard) else None

    async def items_done(self) -> int:
        return self.producer.items_done

    async def aclose(self) -> None:
        """Cancels what was started and never taken (its finished answers stay journaled), closes the
        provider's connections and the examples file, and lets the next run of this model x task in."""
        await self._resources.aclose()


async def _head_start(
    request: BenchmarkRequest,
    model: ModelSpec,
    task_name: str,
    benchmark_id: str,
    store: Store,
    api_keys: ApiKeys | None,
) -> Generation | DatasetError:
    eval_task = make_task(request.task(task_name), require_isolation=request.sandbox == "required")
    try:
        info = await asyncio.to_thread(prepare_examples, store, eval_task)
    except DatasetError as error:  # the subflow reports it, as it would have found it
        return error
    return await Generation.start(request, model, eval_task, info, benchmark_id, store, api_keys)


@contextlib.asynccontextmanager
async def head_starts(
    request: BenchmarkRequest, benchmark_id: str, store: Store, at_once: int, api_keys: ApiKeys | None = None
) -> AsyncIterator[None]:
    """Inside, the first `at_once` models x tasks (those the benchmark flow starts first) generate
    already. A subflow of this benchmark adopts its own with `adopt_head_start`. Those never adopted
    (the flow failed first) are closed on the way out: their finished answers stay in the store."""
    units = request.units()[:at_once] if request.execution == "local" else []
    started = {
        (benchmark_id, model_id, task_name): asyncio.create_task(
            _head_start(request, request.model(model_id), task_name, benchmark_id, store, api_keys)
        )
        for model_id, task_name in units
    }
    token = _HEAD_STARTS.set(started)
    try:
        yield
    finally:
        _HEAD_STARTS.reset(token)
        for pending in started.values():
            pending.cancel()
        for outcome in await asyncio.gather(*started.values(), return_exceptions=True):
            if isinstance(outcome, Generation):
                await outcome.aclose()


async def adopt_head_start(
    benchmark_id: str, model_id: str, task_name: str
) -> Generation | DatasetError | None:
    """The generation started ahead for this model x task, or None when there was none; raises
    HeadStartFailed when it failed otherwise than on the dataset, which the subflow reports."""
    started = _HEAD_STARTS.get()
    pending = started.pop((benchmark_id, model_id, task_name), None) if started is not None else None
    if pending is None:
        return None
    try:
        return await pending
    except Exception as error:
        raise HeadStartFailed(str(error)) from error
