"""A custom task's per-item scores, dispatched through the metric registry's entries.

Per-item metrics score the first sample of each item; an item whose reference a metric cannot use is
left out (logged), never scored 0. Batch metrics (ROUGE, pass@k) then score the remaining items at once.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from benchgate.evaltasks.custom.definition import Definition
from benchgate.spec.example import Example
from scorers.metrics import Batch, ReferenceProblem, score_batch

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

SANDBOX_TIMEOUT_SECONDS = 3.0


def score(
    definition: Definition,
    examples: list[Example],
    predictions: dict[str, list[str]],
    *,
    require_isolation: bool,
) -> pd.DataFrame:
    columns = ["example_id", *(m.name for m in definition.metrics())]
    rows: dict[str, dict[str, float]] = {}
    scored: list[Example] = []
    for example in examples:
        if "problem" in example.fields:
            continue
        row = _item_values(definition, example, predictions[example.example_id][0])
        if row is not None:
            rows[example.example_id] = row
            scored.append(example)
    batched = [metric for metric, _ in definition.chosen if metric.score_batch is not None]
    if batched and scored:
        batch = Batch(
            predictions=[predictions[e.example_id] for e in scored],
            references=[e.references for e in scored],
            fields=[e.fields for e in scored],
            ks=definition.ks(),
            timeout=SANDBOX_TIMEOUT_SECONDS,
            require_isolation=require_isolation,
        )
        for example, values in zip(scored, score_batch(batched, batch), strict=True):
            rows[example.example_id].update(values)
    import pandas as pd

    return pd.DataFrame([{"example_id": i, **row} for i, row in rows.items()], columns=columns)


def _item_values(definition: Definition, example: Example, prediction: str) -> dict[str, float] | None:
    values = {}
    for metric, options in definition.chosen:
        if metric.score is None:
            continue
        try:
            values[metric.name] = metric.score(prediction, example.references, options, example.fields)
        except ReferenceProblem as problem:
            log.warning("%s: item %s is not scored: %s", definition.spec.task, example.example_id, problem)
            return None
    return values
