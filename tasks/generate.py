"""Prefect task: one shard of generations (tens to hundreds of model calls, never one task per call)."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from benchgate.errors import ProviderConfigError
from benchgate.providers.base import Provider
from benchgate.run.engine import ShardContext, ShardGenerations, ShardProducer


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
    provider: Provider, shard: int, context: ShardContext, producer: ShardProducer
) -> ShardGenerations:
    """The shard's generations, which the producer started ahead of this task (benchgate/engine.py).

    Each answer is journaled in the store as it arrives, so a killed run loses only requests in
    flight; this task turns the shard's journal into a Parquet part. A retry generates the shard again.
    """
    return await producer.take(shard)
