"""What a metric is: one declarative entry that carries its scorer, its request checks and its report shape.

Everything that scores or validates a metric (the custom task, request validation, `benchgate tasks`)
goes through these fields, so a new metric is a new entry, never a new branch somewhere else.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["binary", "continuous", "pass@k"]
Scale = Literal["fraction", "percent"]
Need = Literal["choices", "tests"]
_PER_K = re.compile(r"pass@\d+")


class ReferenceProblem(ValueError):
    """The item's reference (not the prediction) makes the metric inapplicable to this item."""


@dataclass(frozen=True)
class Batch:
    """The scorable items of one shard, for metrics that score them all at once (ROUGE, pass@k)."""

    predictions: Sequence[Sequence[str]]  # per item: every sample's post-processed output
    references: Sequence[Sequence[str]]
    fields: Sequence[Mapping[str, Any]]  # per item: what the task kept for scoring ("choices", "tests")
    ks: Sequence[int] = (1,)
    timeout: float = 3.0
    require_isolation: bool = False


ItemScorer = Callable[[str, Sequence[str], Mapping[str, Any], Mapping[str, Any]], float]
"""(prediction, references, options, item fields) -> the item's value in report scale.

Several references are allowed (the best one counts). Raises `ReferenceProblem` when the *reference*
cannot be scored: a data problem of the item, never a wrong answer of the model.
"""

BatchScorer = Callable[[Batch], list[dict[str, float]]]
"""Every item's values by report name. Metrics that share one batch scorer (ROUGE-1/2/L) are scored by
a single call, so a batch scorer may return more columns than the metric asked for."""

OptionCheck = Callable[[Mapping[str, Any]], list[str]]
"""What is wrong with the values of a metric's options (names and required ones are checked for it)."""

ReferenceCheck = Callable[[Sequence[str], Mapping[str, Any]], None]
"""(references, item fields) -> None; raises `ReferenceProblem`, checked before any model is called."""


@dataclass(frozen=True)
class Metric:
    """One metric: how it scores, what a request may set, and how the report and the gate read it.

    `kind` tells the gate how to pair items (binary, continuous, pass@k); `scale` is the report's
    (ROUGE as a fraction, everything else in percent, as published numbers are written). `needs` are
    the task settings the scorer reads from the item's fields.
    """

    name: str
    kind: Kind
    scale: Scale
    summary: str
    example: str
    score: ItemScorer | None = None
    score_batch: BatchScorer | None = None
    check_options: OptionCheck | None = None
    check_references: ReferenceCheck | None = None
    higher_is_better: bool = True
    needs_reference: bool = True
    options: Mapping[str, str] = field(default_factory=dict)  # option name -> what it means
    required: tuple[str, ...] = ()
    needs: tuple[Need, ...] = ()

    def __post_init__(self) -> None:
        if (self.score is None) == (self.score_batch is None):
            raise TypeError(f"metric {self.name}: give exactly one of score and score_batch")
        if self.score_batch is not None and self.options:
            raise TypeError(f"metric {self.name}: a batch scorer takes no options (it may be shared)")

    def columns(self, ks: Sequence[int]) -> list[str]:
        """The report names it fills: pass@k one per k (pass@1, pass@10, ...), any other its own name."""
        return [f"pass@{k}" for k in ks] if self.kind == "pass@k" else [self.name]

    def reports(self, column: str) -> bool:
        """Whether a report name is this metric's ('pass@10' is the pass@k metric's)."""
        return column == self.name or (self.kind == "pass@k" and _PER_K.fullmatch(column) is not None)
