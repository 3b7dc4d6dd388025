"""ROUGE-1/2/L F-measures for summaries, numerically identical to Google's rouge-score package.

`rouge-l` is rouge-score's ``rougeLsum`` (summary-level LCS over sentences split one per line, i.e. on
newlines) with the Porter stemmer, because that is what published CNN/DailyMail numbers use; plain
sentence-less ``rougeL`` scores Lead-3 about 11 points lower (25.0 vs 36.4) and would not be comparable.
So predictions and references should put one sentence per line (CNN/DailyMail highlights already do).

Scoring is CPU-bound pure Python, and about 70% of it is Porter stemming of the same words over and over,
so this module (1) memoizes the stemmer, which changes no number because stemming is a pure function of
the word, and (2) spreads large inputs over a pool of spawned worker processes in ordered chunks. Each
item is scored independently by rouge-score's own code, so results are byte-identical to a single
``RougeScorer(["rouge1", "rouge2", "rougeLsum"], use_stemmer=True).score(reference, prediction)`` call.
"""

from __future__ import annotations

import functools
import math
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

from nltk.stem import porter
from rouge_score import rouge_scorer, tokenize, tokenizers

ROUGE_TYPES = ("rouge1", "rouge2", "rougeLsum")
METRIC_NAMES = {"rouge1": "rouge-1", "rouge2": "rouge-2", "rougeLsum": "rouge-l"}

# Below this many pairs a pool's start-up (~1 s per spawned worker importing nltk) costs more than it saves.
PARALLEL_MIN_ITEMS = 2000
# Chunks per worker: small enough to even out uneven article lengths, big enough to keep pickling cheap.
_CHUNKS_PER_WORKER = 4

_porter = porter.PorterStemmer()


class _MemoStemmer:
    """The Porter stemmer rouge-score uses, with a per-process memo (the stem depends only on the word)."""

    @staticmethod
    @functools.lru_cache(maxsize=1 << 18)
    def stem(word: str) -> str:
        return _porter.stem(word)


class _MemoTokenizer(tokenizers.Tokenizer):
    """rouge-score's default tokenizer (its own `tokenize` function), fed the memoized stemmer."""

    def tokenize(self, text: str) -> list[str]:
        return tokenize.tokenize(text, _MemoStemmer)


@functools.cache
def _scorer() -> rouge_scorer.RougeScorer:
    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), tokenizer=_MemoTokenizer())


def _score_chunk(pairs: Sequence[tuple[str, str]]) -> list[dict[str, float]]:
    """Score (prediction, reference) pairs in this process; also the worker entry point of the pool."""
    scorer = _scorer()
    out = []
    for prediction, reference in pairs:
        scores = scorer.score(reference, prediction)
        out.append({METRIC_NAMES[t]: scores[t].fmeasure for t in ROUGE_TYPES})
    return out


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def score_summaries(
    predictions: list[str], references: list[str], *, workers: int | None = None
) -> list[dict[str, float]]:
    """Per-item ROUGE F-measures (fractions 0-1) as {"rouge-1", "rouge-2", "rouge-l"}, in input order.

    `workers` None uses every available CPU once the input has at least PARALLEL_MIN_ITEMS pairs;
    1 forces a single process. Workers are spawned, not forked, so it is safe inside threaded hosts
    such as a Prefect worker.
    """
    pairs = list(zip(predictions, references, strict=True))
    if workers is None:
        workers = _available_cpus() if len(pairs) >= PARALLEL_MIN_ITEMS else 1
    workers = max(1, min(workers, len(pairs)))
    if workers == 1:
        return _score_chunk(pairs)
    size = math.ceil(len(pairs) / (workers * _CHUNKS_PER_WORKER))
    chunks = [pairs[i : i + size] for i in range(0, len(pairs), size)]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        return [item for chunk in pool.map(_score_chunk, chunks) for item in chunk]
