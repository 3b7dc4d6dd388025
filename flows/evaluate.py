"""Subflow: one model on one evaluation task: load, generate by shard, score, summarise."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from typing import TYPE_CHECKING, Any
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import acreate_progress_artifact, aupdate_progress_artifact
from prefect.utilities.annotations import quote

from benchgate.errors import DatasetError, ProviderConfigError
from benchgate.evaltasks import make_task
from benchgate.evaltasks.base import EvalTask
from benchgate.judges import RubricJudging
from benchgate.report.html.collect import unit_opened, unit_scored
from benchgate.run import generator_process
from benchgate.run.evaluation import (
    GenerationStats,
    Interval,
    TaskResult,
    import_pandas_ahead,
    intervals,
    intervals_resampled_ahead,
    metric_values,
    resample_ahead,
    stored_shard_scores,
    summarize,
)
from benchgate.run.generation import Generation, HeadStartFailed, ShardSource
from benchgate.run.preflight import check_sandbox
from benchgate.spec.request import BenchmarkRequest, ModelSpec
from benchgate.store import Store
from flows.concurrency import bounded_gather, untagged_task_runs
from flows.json_flow import json_flow
from tasks.examples import load_examples
from tasks.generate import generate
from tasks.judge import judge
from tasks.score import score

if TYPE_CHECKING:  # pandas (0.25 s) is not imported at start-up (a run imports it ahead)
    import numpy as np
    import pandas as pd

    from scorers.stats import BootstrapCounts

PROGRESS_SECONDS = 2.0


@json_flow(name="evaluate", flow_run_name="evaluate · {model_id} · {task_name}", persist_result=False)
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
    generation = await _open_generation(parsed, model, eval_task, benchmark_id, store, logger)
    if isinstance(generation, DatasetError):
        logger.error("%s: %s", task_name, generation)
        return TaskResult(model.id, spec.task, eval_task.dataset_name, "", failure=str(generation)).to_dict()
    info = generation.info
    logger.info(
        "%s: %d examples in %d shards (dataset %s, revision %s)",
        task_name,
        info.n_examples,
        info.n_shards,
        info.dataset,
        info.revision,
    )
    shards = generation.shards
    unit_opened(store, spec.task)
    # Drawn on a thread while the model answers: the intervals at the end then take milliseconds.
    resampling = asyncio.create_task(asyncio.to_thread(resample_ahead, eval_task, info.n_examples))
    stats = GenerationStats()
    async with contextlib.AsyncExitStack() as resources:  # each is closed, even if another fails to
        resources.push_async_callback(generation.aclose)
        progress = await acreate_progress_artifact(0.0, description=f"generation · {model_id} · {task_name}")
        judging = RubricJudging.create(parsed, eval_task, benchmark_id, store, info.dataset)
        if judging is not None:
            resources.push_async_callback(judging.aclose)

        reused_whole: list[int] = []  # shards that needed no task run

        async def run_shard(shard: int) -> pd.DataFrame:
            reused = await generation.take_reused(shard) if judging is None else None
            if reused is not None:  # a rerun's shard: no request to retry, so no generate task
                stats.add(reused.rows, reused.requests, reused.reused)
                stored = await asyncio.to_thread(
                    stored_shard_scores, store, eval_task, info.digest, shards[shard], reused.rows
                )
                if stored is not None:  # nor anything to score: no score task either
                    reused_whole.append(shard)
                    return stored
                examples, rows = quote(reused.examples), quote(reused.rows)
                return await score(eval_task, shard, examples, rows, store, info.digest, shards[shard])  # type: ignore[call-overload]
            # quote() keeps Prefect from walking the argument; Prefect unwraps it before the call.
            generated = await generate(model_id, shard, generation.context, quote(generation))  # type: ignore[call-overload]
            if isinstance(generated, ProviderConfigError):
                raise generated
            examples = generated.examples
            stats.add(generated.rows, generated.requests, generated.reused)
            scored = await score(  # type: ignore[call-overload]
                eval_task, shard, quote(examples), quote(generated.rows), store, info.digest, shards[shard]
            )
            if judging is not None and judging.rubrics:
                scored = await judge(judging, shard, quote(examples), quote(generated.rows), quote(scored))  # type: ignore[call-overload]
            return scored

        import_pandas_ahead()
        reporter = asyncio.create_task(
            _report_progress(progress, generation, info.n_examples * generation.context.samples)
        )
        resources.callback(reporter.cancel)
        try:
            frames = await bounded_gather(
                [functools.partial(run_shard, shard) for shard in range(len(shards))],
                generation.shards_in_flight,
            )
        except ProviderConfigError as error:
            logger.error("%s refused the configuration: %s", model_id, error)
            return TaskResult(
                model.id, spec.task, info.dataset, info.revision, n_items=info.n_examples, failure=str(error)
            ).to_dict()
        reporter.cancel()
        # Every shard is in: the progress bar's last step goes to the server (a round trip) while the
        # generation closes and the scores are stored and summed up.
        last_progress = asyncio.create_task(aupdate_progress_artifact(progress, 100.0))
    if reused_whole:
        logger.info(
            "%d of %d shards reused whole (answers and scores in the store): no task runs for them",
            len(reused_whole),
            len(shards),
        )
    import pandas as pd  # loaded by the shards' scoring by now

    scores = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["example_id"])
    if judging is not None:
        scores = judging.complete(scores)
    store.write_scores(benchmark_id, model.id, spec.task, scores)
    # Judges add their metrics after summarize: such a unit is collected with the report.
    metrics = [metric.name for metric in eval_task.metrics()] if judging is None else None
    unit_scored(store, benchmark_id, spec.task, model.id, info.revision, metrics)
    values = metric_values(eval_task, scores)
    computed, _ = await asyncio.gather(_intervals(values, resampling), last_progress)
    result = summarize(eval_task, model, info, scores, stats.as_dict(), parsed.error_budget, computed)
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


async def _intervals(
    values: dict[str, np.ndarray], resampling: asyncio.Task[BootstrapCounts | None]
) -> dict[str, Interval]:
    """The metrics' intervals: from the resamples drawn ahead where they give them, the rest in the
    generation process (`GeneratorProcess.intervals`), or here on a thread."""
    computed, rest = intervals_resampled_ahead(await resampling, values)
    if rest:
        process = generator_process.current()
        computed.update(await (process.intervals(rest) if process else asyncio.to_thread(intervals, rest)))
    return computed


async def _open_generation(
    request: BenchmarkRequest,
    model: ModelSpec,
    eval_task: EvalTask,
    benchmark_id: str,
    store: Store,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
) -> ShardSource | DatasetError:
    """The generation `benchgate run` started ahead in its generation process, if any; else the
    examples through their Prefect task (retried), then a generation started on them: in the
    generation process under `benchgate run`, here otherwise (a deployment, a work-pool lane)."""
    process = generator_process.current()
    task_name = eval_task.spec.task
    if process is not None:
        try:
            started = await process.open(model.id, task_name, None)
        except HeadStartFailed as error:
            logger.warning(
                "%s · %s: generation started ahead failed (%s); starting again", model.id, task_name, error
            )
            started = None
        if started is not None:
            return started
    info = await load_examples(eval_task, store)
    if isinstance(info, DatasetError):
        return info
    if process is not None:
        opened = await process.open(model.id, task_name, info)
        assert opened is not None and not isinstance(opened, DatasetError)  # the examples are read
        return opened
    return await Generation.start(request, model, eval_task, info, benchmark_id, store)


async def _report_progress(progress: UUID, generation: ShardSource, total: int) -> None:
    """The progress artifact every few seconds, by item: a shard is too coarse a step to watch."""
    shown = 0
    while total:
        await asyncio.sleep(PROGRESS_SECONDS)
        done = await generation.items_done()
        if done != shown:
            shown = done
            await aupdate_progress_artifact(progress, min(100.0, 100.0 * shown / total))
