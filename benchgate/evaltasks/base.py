"""What an evaluation task is: a dataset loader, a prompt builder and a scorer behind one interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from benchgate.spec.example import Example
from benchgate.spec.request import TaskSpec

ItemKind = Literal["binary", "continuous", "pass@k"]


@dataclass(frozen=True)
class MetricInfo:
    """A reported metric: its name in the report, its scale, and how the gate pairs it."""

    name: str
    kind: ItemKind
    scale: Literal["fraction", "percent"]
    higher_is_better: bool = True


def registry_metric(name: str) -> MetricInfo:
    """A report metric as the shared registry (scorers.metrics) defines it; 'pass@10' is pass@k."""
    from scorers.metrics import lookup  # here: the registry imports rouge-score and the sandbox

    metric = lookup(name)
    if metric is None:
        raise KeyError(f"{name!r} is not in the metric registry")
    return MetricInfo(name, metric.kind, metric.scale, metric.higher_is_better)


@dataclass(frozen=True)
class LoadedDataset:
    """Examples streamed from a dataset, with the revision that goes into cache keys and the report."""

    name: str
    revision: str
    examples: Iterator[Example]


class EvalTask(ABC):
    """A built-in or custom evaluation task; `spec` carries the request's settings for it."""

    def __init__(self, spec: TaskSpec) -> None:
        self.spec = spec

    @property
    @abstractmethod
    def dataset_name(self) -> str: ...

    @abstractmethod
    def metrics(self) -> list[MetricInfo]: ...

    def problems(self) -> list[str]:
        """Validation problems as 'field: message', found before any model is called."""
        return []

    @abstractmethod
    def load(self) -> LoadedDataset: ...

    def postprocess(self, output: str) -> str:
        """Turn a raw model reply into the prediction the scorer sees."""
        return output.strip()

    @abstractmethod
    def score(self, examples: list[Example], predictions: dict[str, list[str]]) -> pd.DataFrame:
        """Per-item scores: one row per example, column example_id plus one column per metric.

        `predictions` maps example_id to the post-processed outputs of its samples; the report's
        metric is the mean of its column, so columns are in report scale.
        """

    def breakdown(self, scores: pd.DataFrame) -> dict[str, float]:
        """Extra figures for the report's details (e.g. SQuAD's HasAns/NoAns split)."""
        return {}
