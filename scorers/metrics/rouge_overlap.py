"""rouge-1, rouge-2 and rouge-l: rouge-score F-measures, best over the references, scored as one batch.

One batch scorer serves all three (rouge-score computes them together), and it spreads large shards
over worker processes, which is why ROUGE is not scored item by item.
"""

from __future__ import annotations

from collections.abc import Sequence

from scorers.metrics.entry import Batch, Metric

NAMES = ("rouge-1", "rouge-2", "rouge-l")


def rouge_best(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> list[dict[str, float]]:
    """ROUGE-1/2/L per item, each the best over the item's references (rouge-score's score_multi rule)."""
    from scorers.rouge import score_summaries  # here: rouge-score and nltk take a second to import

    pairs = [(i, p, r) for i, (p, refs) in enumerate(zip(predictions, references, strict=True)) for r in refs]
    scored = score_summaries([p for _, p, _ in pairs], [r for _, _, r in pairs])
    best = [dict.fromkeys(NAMES, 0.0) for _ in predictions]
    for (i, _, _), values in zip(pairs, scored, strict=True):
        for name in NAMES:
            best[i][name] = max(best[i][name], values[name])
    return best


def _score(batch: Batch) -> list[dict[str, float]]:
    """The first sample of each item is its prediction."""
    return rouge_best([samples[0] for samples in batch.predictions], batch.references)


METRICS = (
    Metric(
        "rouge-1",
        "continuous",
        "fraction",
        "ROUGE-1 F-measure (rouge-score, Porter stemmer), best over the references",
        "prediction 'the cat sat' vs reference 'the cat sat down' -> 0.857",
        score_batch=_score,
    ),
    Metric(
        "rouge-2",
        "continuous",
        "fraction",
        "ROUGE-2 (bigram) F-measure, best over the references",
        "prediction 'the cat sat' vs reference 'the cat sat down' -> 0.8",
        score_batch=_score,
    ),
    Metric(
        "rouge-l",
        "continuous",
        "fraction",
        "ROUGE-Lsum F-measure (summary-level LCS, one sentence per line), best over the references",
        "prediction 'the cat sat' vs reference 'the cat sat down' -> 0.857",
        score_batch=_score,
    ),
)
