"""Hand-computed cases for the SQuAD v2 metric definition."""

from __future__ import annotations

import pytest

from scorers.squad import evaluate_squad_v2, exact_match, f1, normalize_answer


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("The Eiffel Tower", "eiffel tower"),
        ("  a   cat,  an owl & the dog! ", "cat owl dog"),
        ("Theory of the atom", "theory of atom"),  # "the" only as a whole word
        ("Anne's apple", "annes apple"),  # punctuation removed before articles
        ("a-the", "athe"),
        ("", ""),
        ("the a an", ""),
        ("Ünïcode “quotes”", "ünïcode “quotes”"),  # only ASCII punctuation is removed
    ],
)
def test_normalize_answer(raw: str, normalized: str) -> None:
    assert normalize_answer(raw) == normalized


def test_exact_match_takes_best_gold() -> None:
    assert exact_match("the Normans.", ["Normans", "Norman people"]) == 1.0
    assert exact_match("Norman", ["Normans", "Norman people"]) == 0.0


def test_unanswerable_only_matches_empty() -> None:
    assert exact_match("", []) == 1.0
    assert f1("", []) == 1.0
    assert exact_match("The", []) == 1.0  # normalizes to nothing, i.e. abstains
    assert exact_match("Paris", []) == 0.0
    assert f1("Paris", []) == 0.0


def test_empty_prediction_on_answerable_scores_zero() -> None:
    assert exact_match("", ["Paris"]) == 0.0
    assert f1("", ["Paris"]) == 0.0


def test_gold_that_normalizes_to_nothing_is_dropped() -> None:
    # Golds like "the" vanish under normalization; with none left the question is scored as unanswerable.
    assert exact_match("", ["the", "."]) == 1.0
    assert exact_match("Paris", ["the", "Paris"]) == 1.0


def test_f1_hand_computed() -> None:
    # pred tokens: [cat, sat, on, mat]; gold tokens: [cat, sat]; overlap 2 -> P=1/2, R=1, F1=2/3
    assert f1("The cat sat on the mat", ["a cat sat"]) == pytest.approx(2 / 3)
    # repeated tokens count with multiplicity: pred [a? no] -> [dog, dog, cat], gold [dog, cat, cat]
    # overlap = min(2,1) + min(1,2) = 2 -> P=2/3, R=2/3, F1=2/3
    assert f1("dog dog cat", ["dog cat cat"]) == pytest.approx(2 / 3)
    assert f1("blue", ["red", "blue sky"]) == pytest.approx(2 / 3)  # max over golds: P=1, R=1/2
    assert f1("red", ["blue"]) == 0.0


def test_evaluate_squad_v2_keys_and_breakdown() -> None:
    golds = {"q1": ["Paris"], "q2": ["blue sky", "sky"], "q3": [], "q4": []}
    predictions = {"q1": "paris", "q2": "the sky is blue", "q3": "", "q4": "London"}
    result = evaluate_squad_v2(golds, predictions)
    # q2: pred [sky, is, blue] vs [blue, sky] -> P=2/3, R=1, F1=0.8; vs [sky] -> P=1/3,R=1 -> 0.5
    assert result == pytest.approx(
        {
            "exact": 50.0,
            "f1": 100 * (1 + 0.8 + 1 + 0) / 4,
            "total": 4,
            "HasAns_exact": 50.0,
            "HasAns_f1": 90.0,
            "HasAns_total": 2,
            "NoAns_exact": 50.0,
            "NoAns_f1": 50.0,
            "NoAns_total": 2,
        }
    )


def test_missing_prediction_counts_as_abstaining() -> None:
    golds = {"q1": ["Paris"], "q2": []}
    result = evaluate_squad_v2(golds, {})
    assert result["total"] == 2
    assert result["HasAns_exact"] == 0.0
    assert result["NoAns_exact"] == 100.0


def test_breakdown_only_for_present_kinds() -> None:
    result = evaluate_squad_v2({"q1": ["x"]}, {"q1": "x"})
    assert "NoAns_total" not in result
    assert result["HasAns_total"] == 1
