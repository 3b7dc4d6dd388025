"""contains: a reference appears in the prediction as whole words (for answers inside a longer reply)."""

from __future__ import annotations

from collections.abc import Sequence

from scorers.metrics.entry import Metric
from scorers.squad import normalize_answer


def contains(prediction: str, references: Sequence[str]) -> float:
    haystack = f" {normalize_answer(prediction)} "
    return 100.0 * any(f" {normalize_answer(r)} " in haystack for r in references if normalize_answer(r))


METRICS = (
    Metric(
        "contains",
        "binary",
        "percent",
        "100 if a reference appears in the prediction as whole words, after SQuAD normalization",
        "prediction 'Your order #123 ships Monday.' vs reference 'ships monday' -> 100",
        score=lambda prediction, references, options, fields: contains(prediction, references),
    ),
)
