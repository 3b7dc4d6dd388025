"""Subflow: one model on one evaluation task: load, generate by shard, score, summarise."""

from __future__ import annotations

import asyncio
import functools
import math
from typing import TYPE_CHECKING, Any
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_progress_artifact, aupdate_progress_artifact
from prefect.utilities.annotations import quote

from benchgate.errors import DatasetError, ProviderConfigError
from benchgate.evaltasks import make_task
from benchgate.judges import RubricJudging
from benchgate.providers import create_provider
from benchgate.run.engine import ShardContext, ShardProducer
from benchgate.run.evaluation import GenerationStats, TaskResult, import_pandas_ahead, plan_shards, summarize
from benchgate.run.preflight import check_sandbox
from benchgate.spec.request import BenchmarkRequest
from benchgate.store import Store, partition_name
from flows.concurrency import bounded_gather, untagged_task_runs
from tasks.examples import load_examples
from tasks.generate import generate
from tasks.judge import judge
from tasks.score import score

if TYPE_CHECKING:  # pandas (0.25 s) is not imported at start-up (a run imports it ahead)
    import pandas as pd

PROGRESS_SECONDS = 2.0


def shards_in_flight(concurrency: int, shard_size: int) -> int:
    """Shard tasks at once (collecting, persisting, scoring); generation runs ahead of them."""
    return math.ceil(4 * concurrency / max(1, shard_size)) + 1


def items_ahead(concurrency: int, shard_size: int) -> int:
    """Unfinished requests the producer keeps started: every slot busy, plus items asleep in backoff."""
    return max(16 * concurrency, 2 * shard_size)


@flow(name="evaluate", flow_run_name="evaluate · {model_id} · {task_name}", persist_result=False)
async def evaluate(
    request: dict[str, Any], model_id: str, task_name: str, benchmark_id: str, store_url: str
) -> dict[str, Any]:
    """Takes only JSON parameters, so the same subflow runs in-process or on a work-pool worker.

    Its caller checked the request against the registries and the policy (the benchmark flow, or the
    worker entry); here only its shape is read, not every task's data once more per subflow.
    """
    with untagged_task_runs():
        return await _evaluate(request, model_id, task_name, benchmark_id, store_url)


async def _evaluate(
    request: dict[str, Any], model_id: str, task_name: str, benchmark_id: str, store_url: str
) -> dict[str, Any]:
    logger = get_run_logger()
    parsed = BenchmarkRequest.model_validate(request)
    model, spec = parsed.model(model_id), parsed.task(task_name)
    check_sandbox(parsed, [spec])
    store = Store(store_url)
    eval_task = make_task(spec, require_isolation=parsed.sandbox == "required")
    info = await load_examples(eval_task, store)
    if isinstance(info, DatasetError):
        logger.error("%s: %s", task_name, info)
        return TaskResult(model.id, spec.task, eval_task.dataset_name, "", failure=str(info)).to_dict()
    logger.info(
        "%s: %d examples in %d shards (dataset %s, revision %s)",
        task_name,
        info.n_examples,
        info.n_shards,
        info.dataset,
        info.revision,
    )
    generations = ("generations", f"model={partition_name(model.id)}", f"task={partition_name(spec.task)}")
    async with store.exclusive(*generations):  # a second run of this model x task waits, then reuses
        cached = store.reusable_generations(model.id, spec.task) if parsed.cache == "reuse" else {}
        context = ShardContext(
            benchmark_id, spec.task, info.dataset, info.revision, spec.generations_per_item, parsed.cache
        )
        stats = GenerationStats()
        progress = await acreate_progress_artifact(0.0, description=f"generation · {model_id} · {task_name}")
        provider = create_provider(model)
        judging = RubricJudging.create(parsed, eval_task, benchmark_id, store, info.dataset)
        shards = plan_shards(info, spec.shard_size)
        shard_items = (spec.shard_size or 100) * max((len(groups) for groups in shards), default=1)
        in_flight = shards_in_flight(model.concurrency, shard_items)
        ahead = items_ahead(model.concurrency, shard_items)
        examples_file = store.open_examples(info.digest)
        producer = ShardProducer(
            provider,
            context,
            cached,
            store,
            examples_file.read_group,
            shards,
            max_items_ahead=ahead,
            max_examples_untaken=ahead,
        )

        async def run_shard(shard: int) -> pd.DataFrame:
            examples = await producer.examples(shard)
            # quote() keeps Prefect from walking the argument; Prefect unwraps it before the call.
            generated = await generate(provider, shard, context, quote(producer))  # type: ignore[call-overload]
            if isinstance(generated, ProviderConfigError):
                raise generated
            stats.add(generated.rows, generated.requests, generated.reused)
            scored = await score(  # type: ignore[call-overload]
                eval_task, shard, quote(examples), quote(generated.rows), store, info.digest, shards[shard]
            )
            if judging is not None and judging.rubrics:
                scored = await judge(judging, shard, quote(examples), quote(generated.rows), quote(scored))  # type: ignore[call-overload]
            return scored

        producer.start()
        import_pandas_ahead()
        reporter = asyncio.create_task(
            _report_progress(progress, producer, info.n_examples * context.samples)
        )
        try:
            frames = await bounded_gather(
                [functools.partial(run_shard, shard) for shard in range(len(shards))], in_flight
            )
        except ProviderConfigError as error:
            logger.error("%s refused the configuration: %s", model_id, error)
            return TaskResult(
                model.id, spec.task, info.dataset, info.revision, n_items=info.n_examples, failure=str(error)
            ).to_dict()
        finally:
            reporter.cancel()
            await producer.aclose()
            examples_file.close()
            await provider.aclose()
            if judging is not None:
                await judging.aclose()
    await aupdate_progress_artifact(progress, 100.0)
    import pandas as pd  # loaded by the shards' scoring by now

    scores = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["example_id"])
    if judging is not None:
        scores = judging.complete(scores)
    store.write_scores(benchmark_id, model.id, spec.task, scores)
    result = summarize(eval_task, model, info, scores, stats.as_dict(), parsed.error_budget)
    if judging is not None:
        judging.record(result)
    logger.info(
        "%s · %s: %s (%d requests, %d reused, %d errored items)",
        model_id,
        task_name,
        {m: round(v["value"], 4) for m, v in result.metrics.items()},
        result.requests,
        result.reused,
        result.n_errors,
    )
    return result.to_dict()


async def _report_progress(progress: UUID, producer: ShardProducer, total: int) -> None:
    """The progress artifact every few seconds, by item: a shard is too coarse a step to watch."""
    shown = 0
    while total:
        await asyncio.sleep(PROGRESS_SECONDS)
        if producer.items_done != shown:
            shown = producer.items_done
            await aupdate_progress_artifact(progress, min(100.0, 100.0 * shown / total))
