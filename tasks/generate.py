"""Prefect task: one shard of generations (tens to hundreds of model calls, never one task per call)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from benchgate.errors import ProviderConfigError
from benchgate.run.engine import ShardContext, ShardGenerations
from benchgate.run.generation import ShardSource


@task(
    name="generate",
    task_run_name="generate · {model_id} · {context.task} · shard {shard}",
    retries=2,
    retry_delay_seconds=exponential_backoff(backoff_factor=1),
    retry_jitter_factor=0.5,
    cache_policy=NO_CACHE,
)
async def generate(
    model_id: str, shard: int, context: ShardContext, generation: ShardSource
) -> ShardGenerations | ProviderConfigError:
    """The shard's generations, which the producer started ahead of this task (benchgate/run/engine.py),
    here or in the generation process (benchgate/run/generator_process.py).

    Each answer is journaled in the store as it arrives, so a killed run loses only requests in
    flight; this task turns the shard's journal into a Parquet part. A retry generates the shard again.
    A refused configuration (bad key, unknown model) fails the same way every time, so it is returned,
    not raised: Prefect retries only what may be transient.
    """
    try:
        return await generation.take(shard)
    except ProviderConfigError as error:
        return error
