"""exact-match and f1-score: the SQuAD definitions, per item, best over the references."""

from __future__ import annotations

from scorers.metrics.entry import Metric
from scorers.squad import exact_match, f1

METRICS = (
    Metric(
        "exact-match",
        "binary",
        "percent",
        "100 if the prediction equals a reference after SQuAD normalization (case, punctuation, "
        "articles a/an/the, whitespace), else 0",
        "prediction 'The Eiffel Tower!' vs reference 'eiffel tower' -> 100",
        score=lambda prediction, references, options, fields: (
            100.0 * exact_match(prediction, list(references))
        ),
    ),
    Metric(
        "f1-score",
        "continuous",
        "percent",
        "SQuAD token-overlap F1 (after the same normalization), best over the references",
        "prediction 'the red car' vs reference 'red sports car' -> 80 (precision 2/2, recall 2/3)",
        score=lambda prediction, references, options, fields: 100.0 * f1(prediction, list(references)),
    ),
)
