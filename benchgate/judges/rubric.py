"""Rubric judge metrics: each answer graded on a declared scale, per shard inside the evaluate subflow."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from benchgate.evaltasks.base import EvalTask
from benchgate.judges.calls import JudgeCalls, Template, base_variables
from benchgate.run.evaluation import TaskResult
from benchgate.spec.example import Example
from benchgate.spec.judge import PairwiseMetric, RubricMetric, judge_metrics
from benchgate.spec.request import BenchmarkRequest
from benchgate.store import Store

if TYPE_CHECKING:  # pandas (0.25 s) is not imported at start-up (a run imports it ahead)
    import pandas as pd

log = logging.getLogger(__name__)


class RubricJudging:
    """The judge metrics of one model x task: rubric columns per shard, pairwise columns left for later."""

    def __init__(
        self,
        request: BenchmarkRequest,
        task: EvalTask,
        benchmark_id: str,
        store: Store,
        dataset: str,
    ) -> None:
        judges = [metric for _, metric in judge_metrics(task.spec.metrics)]
        self.task = task
        self.rubrics = [j for j in judges if isinstance(j, RubricMetric)]
        self.pairwise = [j for j in judges if isinstance(j, PairwiseMetric)]
        self.templates = [Template(r.template) for r in self.rubrics]
        self.calls = JudgeCalls(request, task.spec.task, dataset, benchmark_id, store)

    @classmethod
    def create(
        cls, request: BenchmarkRequest, task: EvalTask, benchmark_id: str, store: Store, dataset: str
    ) -> RubricJudging | None:
        """None for a task without judge metrics: nothing to do, nothing to close."""
        if not judge_metrics(task.spec.metrics):
            return None
        return cls(request, task, benchmark_id, store, dataset)

    async def judge_shard(
        self, examples: Sequence[Example], rows: list[dict[str, Any]], scores: pd.DataFrame
    ) -> pd.DataFrame:
        """The shard's scores with a column per rubric (the mean over epochs, percent of the scale); an
        item whose verdict is missing or unreadable is a judge error: left out, as errored items are."""
        answers: dict[str, dict[int, str]] = {}
        for row in rows:
            if row["error"] is None:
                answers.setdefault(row["example_id"], {})[int(row["sample_index"])] = row["output"] or ""
        scored = set(scores["example_id"])
        prompts: dict[str, str] = {}
        failed: set[str] = set()
        for example in examples:
            if example.example_id not in scored:
                continue
            for r, (rubric, template) in enumerate(zip(self.rubrics, self.templates, strict=True)):
                low, high = rubric.bounds
                for epoch, output in sorted(answers[example.example_id].items()):
                    variables = {
                        **base_variables(example),
                        "answer": self.task.postprocess(output),
                        "scale_low": low,
                        "scale_high": high,
                    }
                    try:
                        prompts[f"{example.example_id}~{r}~{epoch}"] = template.render(variables)
                    except ValueError as error:
                        log.warning("%s: item %s: %s", self.task.spec.task, example.example_id, error)
                        failed.add(example.example_id)
        values: dict[str, dict[str, list[float]]] = {}
        by_judge: dict[str, dict[str, str]] = {}
        for prompt_id, text in prompts.items():
            by_judge.setdefault(self.rubrics[int(prompt_id.split("~")[-2])].judge, {})[prompt_id] = text
        for judge_id, batch in by_judge.items():
            for prompt_id, row in (await self.calls.ask(judge_id, batch)).items():
                item, position, _ = prompt_id.rsplit("~", 2)
                rubric = self.rubrics[int(position)]
                try:
                    if row["error"] is not None:
                        raise ValueError(f"the judge call failed: {row['error']}")
                    value = rubric.parse(row["output"] or "")
                except ValueError as error:
                    log.warning(
                        "%s: item %s: judge error (%s): %s",
                        self.task.spec.task,
                        item,
                        rubric.metric_name,
                        error,
                    )
                    failed.add(item)
                    continue
                values.setdefault(item, {}).setdefault(rubric.metric_name, []).append(value)
        self.calls.errors += len(failed)
        judged = scores[~scores["example_id"].isin(failed)].copy()
        for rubric in self.rubrics:
            judged[rubric.metric_name] = [
                float(np.mean(values[item][rubric.metric_name])) for item in judged["example_id"]
            ]
        return judged

    def complete(self, scores: pd.DataFrame) -> pd.DataFrame:
        """Pairwise columns exist from the start (unknown until every model has answered: NaN)."""
        for pairwise in self.pairwise:
            scores[pairwise.metric_name] = math.nan
        return scores

    def record(self, result: TaskResult) -> None:
        if self.rubrics:
            result.judge = self.calls.details()

    async def aclose(self) -> None:
        await self.calls.aclose()
