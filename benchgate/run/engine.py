"""The generation engine: one shard of examples, every sample, asynchronously against one provider."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from benchgate import jsonio
from benchgate.errors import ProviderConfigError, ProviderError
from benchgate.providers.base import Provider
from benchgate.run.cache_keys import GenerationKeys
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
    """A shard's generation rows (reused or new), with the examples they answer, for its scoring."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    reused: int = 0
    examples: Sequence[Example] = field(default_factory=list)


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
    keys = GenerationKeys(spec, provider.endpoint, context.dataset_revision)
    outcome = ShardGenerations()
    pending: list[asyncio.Task[dict[str, Any]]] = []
    for example in examples:
        prompt = jsonio.dumps(example.messages).decode()
        for sample_index in range(context.samples):
            key = keys.key(example.messages, sample_index)
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
        row.update(
            error=storable(str(error)), error_kind=kind, attempts=error.attempts, timeouts=error.timeouts
        )
    else:
        row.update(
            output=storable(completion.text),
            finish_reason=storable(completion.finish_reason),
            input_tokens=completion.input_tokens,
            output_tokens=completion.output_tokens,
            latency_ms=completion.latency_ms,
            attempts=completion.attempts,
            timeouts=completion.timeouts,
        )


_SURROGATE = re.compile("[\ud800-\udfff]")  # in a str, every surrogate is a lone one: pairs are decoded


def storable(text: str | None) -> str | None:
    """The text with each lone surrogate (a JSON escape such as \\ud800 that no second half follows,
    which a provider's JSON may carry) as U+FFFD: UTF-8, hence the journal and Parquet, cannot hold it,
    and a model's answer must not be able to fail its shard."""
    if text is None:
        return None
    try:
        text.encode()
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


@dataclass
class _Started:
    """A shard whose first row group has started: its examples and generations so far, one journal."""

    writer: GenerationWriter
    examples: list[Example] = field(default_factory=list)
    groups: list[asyncio.Task[ShardGenerations]] = field(default_factory=list)
    complete: asyncio.Event = field(default_factory=asyncio.Event)  # set when production stops
    all_started: bool = False  # False when the examples file failed mid-shard


class ShardProducer:
    """Starts each shard's generation ahead of its Prefect task, so slots never wait on orchestration.

    A shard is what Prefect records and retries (a few per model x task); it spans row groups of the
    examples file, which the producer reads and starts one at a time, so memory follows the items
    in flight, not the shard's size. The Prefect task of a shard (tasks/generate.py) only collects
    what the producer started: a shard waiting for its slowest item's retry chain, or a Prefect
    API call that stalls (SQLite busy), does not hold back the items of the following shards. Each
    shard has its own journal, written as every item finishes, and its own Parquet part, written
    when its task takes it. Two bounds, in items: `max_items_ahead` unfinished requests (enough to
    keep every slot busy while items sleep in backoff) and `max_examples_untaken` examples started
    in earlier shards that no task has taken yet, finished or not. The second holds memory to the
    items in flight when generation outruns scoring: a shard is an eighth of a large dataset, so a
    bound in shards let the examples and answers of all of it wait for their shards' tasks. Only
    earlier shards count against it: a shard's task takes it once all of it has started, so the
    shard being read is never held back by its own size.
    """

    def __init__(
        self,
        provider: Provider,
        context: ShardContext,
        cached: dict[str, dict[str, Any]],
        store: Store,
        read_group: Callable[[int], list[Example]],
        shards: list[range],
        max_items_ahead: int,
        max_examples_untaken: int,
    ) -> None:
        self.provider, self.context, self.cached, self.store = provider, context, cached, store
        self._read_group = read_group
        self._shards = shards
        self._max_items_ahead = max_items_ahead
        self._max_examples_untaken = max_examples_untaken
        self._started: dict[int, _Started] = {}
        self._taken_shards: set[int] = set()
        self._ready: dict[int, asyncio.Event] = {}
        self._error: BaseException | None = None
        self._unfinished = 0
        self._untaken = 0
        self._changed = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self.items_done = 0  # generated or reused so far, for the progress artifact

    def start(self) -> None:
        self._runner = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            await self._produce()
        except BaseException as error:  # a shard that cannot be read: its task (and later ones) fail
            self._error = error
            for shard in range(len(self._shards)):
                self._ready.setdefault(shard, asyncio.Event()).set()
                if shard in self._started:
                    self._started[shard].complete.set()  # all_started stays False: its task raises
            if not isinstance(error, Exception):
                raise

    async def _produce(self) -> None:
        for shard, groups in enumerate(self._shards):
            await self._wait_for_room(shard, 0)  # before its journal exists
            started = _Started(self.store.generation_writer(self.provider.spec.id, self.context.task))
            self._started[shard] = started
            self._ready.setdefault(shard, asyncio.Event()).set()
            for group in groups:
                await self._wait_for_room(shard, len(started.examples))
                examples = self._read_group(group)
                started.examples.extend(examples)
                if shard not in self._taken_shards:
                    self._untaken += len(examples)
                started.groups.append(self._start_group(examples, started.writer))
                await asyncio.sleep(0)  # this group's first requests go out before the next is read
            started.all_started = True
            started.complete.set()

    async def _wait_for_room(self, shard: int, started_examples: int) -> None:
        """Until both bounds leave room; the examples of `shard` itself never count against the second."""
        while self._unfinished >= self._max_items_ahead or (
            shard not in self._taken_shards and self._untaken - started_examples >= self._max_examples_untaken
        ):
            await self._wait_for_change()

    async def _wait_for_change(self) -> None:
        self._changed.clear()
        await self._changed.wait()

    def _start_group(
        self, examples: list[Example], writer: GenerationWriter
    ) -> asyncio.Task[ShardGenerations]:
        remaining = [len(examples) * self.context.samples]  # cached items are settled at the end
        self._unfinished += remaining[0]

        def item_done() -> None:
            remaining[0] -= 1
            self._unfinished -= 1
            self.items_done += 1
            self._changed.set()

        def group_done(_: object) -> None:
            self._unfinished -= remaining[0]
            self.items_done += remaining[0]
            remaining[0] = 0
            self._changed.set()

        task = asyncio.create_task(
            generate_shard(self.provider, examples, self.context, self.cached, writer, item_done)
        )
        task.add_done_callback(group_done)
        return task

    async def _wait(self, shard: int) -> _Started:
        await self._ready.setdefault(shard, asyncio.Event()).wait()
        if shard not in self._started:
            assert self._error is not None
            raise self._error
        started = self._started[shard]
        await started.complete.wait()
        if not started.all_started:
            assert self._error is not None
            raise self._error
        return started

    def reused_whole(self, shard: int) -> bool:
        """Whether the shard is produced, untaken, and made no request: every answer came from the
        store (a rerun's). Does not wait: a shard still being produced is not."""
        started = self._started.get(shard)
        if started is None or shard in self._taken_shards or not started.all_started:
            return False
        return all(
            group.done() and not group.cancelled() and not group.exception() and not group.result().requests
            for group in started.groups
        )

    async def take(self, shard: int) -> ShardGenerations:
        """The shard's generations; its journal becomes a Parquet part. A second call (a Prefect retry
        of the shard's task after a failure) generates the shard again, reusing what the store holds."""
        if shard in self._taken_shards:
            return await self._regenerate(shard)
        started = self._started.get(shard)
        self._taken_shards.add(shard)
        if started is not None:  # what the producer starts of it from now on is not counted
            self._untaken -= len(started.examples)
        self._changed.set()
        try:
            started = await self._wait(shard)
            try:
                parts = await asyncio.gather(*started.groups)
            except BaseException:  # a refused configuration, or this task cancelled: stop the rest
                for task in started.groups:
                    task.cancel()
                await asyncio.gather(*started.groups, return_exceptions=True)
                raise
            outcome = ShardGenerations(examples=started.examples)
            for part in parts:
                outcome.rows.extend(part.rows)
                outcome.requests += part.requests
                outcome.reused += part.reused
            return outcome
        finally:
            self._started.pop(shard, None)  # a taken shard's rows and examples must not outlive it (memory)
            if started is not None:
                # The Parquet part (12-50 ms for 1,000 rows) is written off the event loop, which
                # goes on sending and reading the next shards' requests meanwhile.
                await asyncio.to_thread(started.writer.close)

    async def _regenerate(self, shard: int) -> ShardGenerations:
        cached = self.cached
        if self.context.cache == "reuse":  # what the failed attempt finished is in the store now
            cached = self.store.reusable_generations(self.provider.spec.id, self.context.task)
        examples = [e for group in self._shards[shard] for e in self._read_group(group)]
        writer = self.store.generation_writer(self.provider.spec.id, self.context.task)
        try:
            outcome = await generate_shard(self.provider, examples, self.context, cached, writer)
        finally:
            writer.close()
        outcome.examples = examples
        return outcome

    async def aclose(self) -> None:
        """Cancel what was started and never taken; finished rows still become Parquet parts."""
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
        for shard, started in list(self._started.items()):
            if shard in self._taken_shards:
                continue
            for task in started.groups:
                task.cancel()
            await asyncio.gather(*started.groups, return_exceptions=True)
            started.writer.close()
