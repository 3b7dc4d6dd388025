"""The EvalTask interface of a custom task: a dataset, Jinja2 templates over its rows, registry metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING

from benchgate.evaltasks.base import EvalTask, LoadedDataset, MetricInfo
from benchgate.evaltasks.custom import scoring, validation
from benchgate.evaltasks.custom.definition import Definition
from benchgate.evaltasks.custom.items import Items
from benchgate.evaltasks.custom.postprocess import postprocess
from benchgate.spec.example import Example
from benchgate.spec.request import TaskSpec

if TYPE_CHECKING:
    import pandas as pd


class CustomTask(EvalTask):
    """The EvalTask interface over a custom task's definition, items, validation and scoring."""

    def __init__(self, spec: TaskSpec) -> None:
        super().__init__(spec)
        self.definition = Definition(spec)
        self.items = Items(self.definition)

    @property
    def dataset_name(self) -> str:
        return self.definition.dataset_name

    def metrics(self) -> list[MetricInfo]:
        return self.definition.metrics()

    def problems(self) -> list[str]:
        return validation.problems(self.definition, self.items)

    def load(self) -> LoadedDataset:
        return self.items.load()

    def postprocess(self, output: str) -> str:
        return postprocess(self.spec.postprocess, output)

    def score(self, examples: list[Example], predictions: dict[str, list[str]]) -> pd.DataFrame:
        return scoring.score(self.definition, examples, predictions, require_isolation=self.require_isolation)
