"""Prefect task: one shard of generations (tens to hundreds of model calls, never one task per call)."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from benchgate.engine import ShardContext, ShardGenerations, generate_shard
from benchgate.errors import ProviderConfigError
from benchgate.examples import Example
from benchgate.providers.base import Provider
from benchgate.store import Store


def _worth_retrying(task: Any, task_run: Any, state: Any) -> bool:
    """A refused configuration fails the same way every time; anything else may be transient."""
    return not isinstance(state.result(raise_on_failure=False), ProviderConfigError)


@task(
    name="generate",
    task_run_name="generate · {provider.spec.id} · {context.task} · shard {shard}",
    retries=2,
    retry_delay_seconds=exponential_backoff(backoff_factor=1),
    retry_jitter_factor=0.5,
    retry_condition_fn=_worth_retrying,
    cache_policy=NO_CACHE,
)
async def generate(
    provider: Provider,
    shard: int,
    examples: list[Example],
    context: ShardContext,
    cached: dict[str, dict[str, Any]],
    store: Store,
) -> ShardGenerations:
    """Each answer is journaled in the store as it arrives, so a killed run loses only requests in flight."""
    writer = store.generation_writer(provider.spec.id, context.task)
    try:
        return await generate_shard(provider, examples, context, cached, writer)
    finally:
        writer.close()
