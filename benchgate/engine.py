"""The generation engine: one shard of examples, every sample, asynchronously against one provider."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from benchgate.cache_keys import generation_key
from benchgate.errors import ProviderConfigError, ProviderError
from benchgate.examples import Example
from benchgate.providers.base import Provider
from benchgate.request import CachePolicy
from benchgate.store import GenerationWriter


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
                outcome.rows.append(hit)
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
            pending.append(asyncio.create_task(_one(provider, example, sample_index, base, writer)))
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
    provider: Provider, example: Example, sample_index: int, base: dict[str, Any], writer: GenerationWriter
) -> dict[str, Any]:
    started = time.perf_counter()
    row = dict(base, output=None, finish_reason=None, error=None, error_kind=None)
    row.update(input_tokens=None, output_tokens=None)
    latency_ms = None
    try:
        completion = await provider.complete(example, sample_index)
    except ProviderConfigError:
        raise
    except ProviderError as error:
        row.update(error=str(error), error_kind="transient" if error.transient else "request")
    else:
        row.update(
            output=completion.text,
            finish_reason=completion.finish_reason,
            input_tokens=completion.input_tokens,
            output_tokens=completion.output_tokens,
        )
        latency_ms = completion.latency_ms
    row["latency_ms"] = latency_ms if latency_ms is not None else (time.perf_counter() - started) * 1000.0
    row["created_at"] = datetime.now(timezone.utc).isoformat()
    writer.append(row)
    return row
