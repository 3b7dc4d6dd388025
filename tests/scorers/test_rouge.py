"""ROUGE: the scorer must give rouge-score's exact numbers, in one process or in the pool."""

from __future__ import annotations

import pytest
from rouge_score import rouge_scorer

from scorers.rouge import score_summaries

PAIRS = [
    ("the cat sat on the mat .\nit was happy .", "a cat was sitting on the mat .\nthe cat was happy ."),
    ("police arrested two running men", "two men were arrested by police after running"),
    ("", "reference with words"),
    ("prediction only", ""),
    ("Generously, stemming matters: running runners ran.", "run runner running generous"),
    ("identical text\nsecond line", "identical text\nsecond line"),
]


def reference_scores(pairs: list[tuple[str, str]]) -> list[dict[str, float]]:
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeLsum"], use_stemmer=True)
    out = []
    for prediction, reference in pairs:
        s = scorer.score(reference, prediction)
        out.append(
            {
                "rouge-1": s["rouge1"].fmeasure,
                "rouge-2": s["rouge2"].fmeasure,
                "rouge-l": s["rougeLsum"].fmeasure,
            }
        )
    return out


def test_identical_to_rouge_score_single_process() -> None:
    predictions, references = zip(*PAIRS, strict=True)
    assert score_summaries(list(predictions), list(references), workers=1) == reference_scores(PAIRS)


def test_pool_gives_the_same_numbers_in_order() -> None:
    pairs = [(f"{p} {i}", r) for i in range(40) for p, r in PAIRS]
    predictions, references = zip(*pairs, strict=True)
    assert score_summaries(list(predictions), list(references), workers=2) == reference_scores(pairs)


def test_rouge_l_is_summary_level() -> None:
    # Sentence-level union LCS: the two reference lines match the two prediction lines in swapped order,
    # which summary-level ROUGE-L credits in full but a single LCS over the whole text cannot.
    [scores] = score_summaries(["beta gamma\nalpha delta"], ["alpha delta\nbeta gamma"], workers=1)
    assert scores["rouge-l"] == 1.0
    assert scores["rouge-1"] == 1.0
    assert scores["rouge-2"] == pytest.approx(2 / 3)  # "gamma alpha" vs "delta beta" straddle the lines


def test_empty_input_and_length_mismatch() -> None:
    assert score_summaries([], []) == []
    with pytest.raises(ValueError):
        score_summaries(["a"], [])
