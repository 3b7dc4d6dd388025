"""The generation engine: one shard of examples, every sample, asynchronously against one provider."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from benchgate.errors import ProviderConfigError, ProviderError
from benchgate.providers.base import Provider
from benchgate.run.cache_keys import generation_key
from benchgate.spec.example import Example
from benchgate.spec.request import CachePolicy
from benchgate.store import GenerationWriter, Store


@dataclass(frozen=True)
class ShardContext:
    """Everything about a shard that is the same for each of its items."""

    benchmark_id: str
    task: str
    dataset: str
    dataset_revision: str
    samples: int
    cache: CachePolicy


@dataclass
class ShardGenerations:
    rows: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    reused: int = 0


async def generate_shard(
    provider: Provider,
    examples: list[Example],
    context: ShardContext,
    cached: dict[str, dict[str, Any]],
    writer: GenerationWriter,
    on_item_done: Callable[[], None] | None = None,
) -> ShardGenerations:
    """Reuse what is cached, ask the model for the rest, persist each answer the moment it arrives.

    A ProviderConfigError (bad key, unknown model) stops the shard at once; any other provider
    error is recorded on its item and never cached, so the next run retries it.
    """
    spec = provider.spec
    params_json = json.dumps(spec.params, sort_keys=True)
    outcome = ShardGenerations()
    pending: list[asyncio.Task[dict[str, Any]]] = []
    for example in examples:
        prompt = json.dumps(example.messages, ensure_ascii=False)
        for sample_index in range(context.samples):
            key = generation_key(
                spec, provider.endpoint, example.messages, sample_index, context.dataset_revision
            )
            hit = cached.get(key) if context.cache == "reuse" else None
            if hit is not None:
                # The key is the prompt's, not the item's: two items asking the same thing share an
                # answer, and each keeps its own id.
                outcome.rows.append({**hit, "example_id": example.example_id})
                outcome.reused += 1
                continue
            base = {
                "cache_key": key,
                "benchmark_id": context.benchmark_id,
                "model_id": spec.id,
                "provider": spec.provider,
                "model_name": spec.model_name,
                "params": params_json,
                "dataset": context.dataset,
                "dataset_revision": context.dataset_revision,
                "example_id": example.example_id,
                "sample_index": sample_index,
                "prompt": prompt,
                "reusable": context.cache != "off",
            }
            pending.append(
                asyncio.create_task(_one(provider, example, sample_index, base, writer, on_item_done))
            )
    outcome.requests = len(pending)
    try:
        outcome.rows.extend(await asyncio.gather(*pending))
    except ProviderConfigError:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        raise
    return outcome


async def _one(
    provider: Provider,
    example: Example,
    sample_index: int,
    base: dict[str, Any],
    writer: GenerationWriter,
    on_item_done: Callable[[], None] | None,
) -> dict[str, Any]:
    try:
        return await _generate_one(provider, example, sample_index, base, writer)
    finally:
        if on_item_done is not None:
            on_item_done()


async def _generate_one(
    provider: Provider, example: Example, sample_index: int, base: dict[str, Any], writer: GenerationWriter
) -> dict[str, Any]:
    started = time.perf_counter()
    row = dict(base, output=None, finish_reason=None, error=None, error_kind=None)
    # attempts and timeouts feed the report's details (GenerationStats); Parquet parts leave them out.
    row.update(input_tokens=None, output_tokens=None, latency_ms=None, attempts=0, timeouts=0)
    problem = example.fields.get("problem")
    if problem:  # a row the task could not turn into a prompt or target: no model call can help
        row.update(error=f"item not sent: {problem}", error_kind="data")
    else:
        await _ask(provider, example, sample_index, row)
    if row["latency_ms"] is None:
        row["latency_ms"] = (time.perf_counter() - started) * 1000.0
    row["created_at"] = datetime.now(timezone.utc).isoformat()
    writer.append(row)
    return row


async def _ask(provider: Provider, example: Example, sample_index: int, row: dict[str, Any]) -> None:
    try:
        completion = await provider.complete(example, sample_index)
    except ProviderConfigError:
        raise
    except ProviderError as error:
        kind = "transient" if error.transient else "request"
        row.update(error=str(error), error_kind=kind, attempts=error.attempts, timeouts=error.timeouts)
    else:
        row.update(
            output=completion.text,
            finish_reason=completion.finish_reason,
            input_tokens=completion.input_tokens,
            output_tokens=completion.output_tokens,
            latency_ms=completion.latency_ms,
            attempts=completion.attempts,
            timeouts=completion.timeouts,
        )


_Started = tuple[list[Example], GenerationWriter, "asyncio.Task[ShardGenerations]"]


class ShardProducer:
    """Starts each shard's generation ahead of its Prefect task, so slots never wait on orchestration.

    The Prefect task of a shard (tasks/generate.py) only collects what the producer started: a
    shard waiting for its slowest item's retry chain, or a Prefect API call that stalls (SQLite
    busy), no longer holds back the items of the following shards. Each shard still has its own
    journal, written as every item finishes, and its own Parquet part, written when its task
    takes it. Two bounds: `max_items_ahead` unfinished requests (enough to keep every slot busy
    while items sleep in backoff) and `max_shards_ahead` shards started but not yet taken (memory).
    """

    def __init__(
        self,
        provider: Provider,
        context: ShardContext,
        cached: dict[str, dict[str, Any]],
        store: Store,
        read_shard: Callable[[int], list[Example]],
        n_shards: int,
        max_items_ahead: int,
        max_shards_ahead: int,
    ) -> None:
        self.provider, self.context, self.cached, self.store = provider, context, cached, store
        self._read_shard = read_shard
        self._n_shards = n_shards
        self._max_items_ahead = max_items_ahead
        self._max_shards_ahead = max_shards_ahead
        self._started: dict[int, _Started] = {}
        self._taken_shards: set[int] = set()
        self._ready: dict[int, asyncio.Event] = {}
        self._error: BaseException | None = None
        self._unfinished = 0
        self._taken = 0
        self._changed = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._runner = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            await self._produce()
        except BaseException as error:  # a shard that cannot be read: its task (and later ones) fail
            self._error = error
            for shard in range(self._n_shards):
                self._ready.setdefault(shard, asyncio.Event()).set()
            if not isinstance(error, Exception):
                raise

    async def _produce(self) -> None:
        for shard in range(self._n_shards):
            while self._unfinished >= self._max_items_ahead or shard - self._taken >= self._max_shards_ahead:
                self._changed.clear()
                await self._changed.wait()
            examples = self._read_shard(shard)
            writer = self.store.generation_writer(self.provider.spec.id, self.context.task)
            remaining = [len(examples) * self.context.samples]  # cached items are settled at the end
            self._unfinished += remaining[0]

            def item_done(remaining: list[int] = remaining) -> None:
                remaining[0] -= 1
                self._unfinished -= 1
                self._changed.set()

            def shard_done(_: object, remaining: list[int] = remaining) -> None:
                self._unfinished -= remaining[0]
                remaining[0] = 0
                self._changed.set()

            task = asyncio.create_task(
                generate_shard(self.provider, examples, self.context, self.cached, writer, item_done)
            )
            task.add_done_callback(shard_done)
            self._started[shard] = (examples, writer, task)
            self._ready.setdefault(shard, asyncio.Event()).set()

    async def _wait(self, shard: int) -> _Started:
        await self._ready.setdefault(shard, asyncio.Event()).wait()
        if shard not in self._started:
            assert self._error is not None
            raise self._error
        return self._started[shard]

    async def examples(self, shard: int) -> list[Example]:
        return (await self._wait(shard))[0]

    async def take(self, shard: int) -> ShardGenerations:
        """The shard's generations; its journal becomes a Parquet part. A second call (a Prefect retry
        of the shard's task after a failure) generates the shard again from scratch."""
        if shard in self._taken_shards:
            writer = self.store.generation_writer(self.provider.spec.id, self.context.task)
            try:
                return await generate_shard(
                    self.provider, self._read_shard(shard), self.context, self.cached, writer
                )
            finally:
                writer.close()
        _, writer, task = await self._wait(shard)
        self._taken_shards.add(shard)
        self._taken += 1
        self._changed.set()
        try:
            return await task
        finally:
            writer.close()
            del self._started[shard]  # a taken shard's rows and examples must not outlive it (memory)

    async def aclose(self) -> None:
        """Cancel what was started and never taken; finished rows still become Parquet parts."""
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
        for shard, (_, writer, task) in list(self._started.items()):
            if shard in self._taken_shards:
                continue
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            writer.close()
