"""The metric registry: every metric against values worked out by hand, and the registry's declarations."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from scorers import metrics
from scorers.metrics import Batch, Metric, ReferenceProblem, score_batch, score_item
from scorers.metrics.multiple_choice import choice_index


def rouge(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> list[dict[str, float]]:
    """ROUGE through the registry's entries, as the custom task scores it."""
    batch = Batch([[p] for p in predictions], references, [{} for _ in predictions])
    return score_batch([metrics.METRICS[name] for name in ("rouge-1", "rouge-2", "rouge-l")], batch)


def test_every_metric_declares_scale_direction_and_an_example() -> None:
    assert set(metrics.METRICS) == {
        "exact-match",
        "f1-score",
        "rouge-1",
        "rouge-2",
        "rouge-l",
        "contains",
        "regex-match",
        "numeric-match",
        "json-valid",
        "json-match",
        "choice-accuracy",
        "pass@k",
    }
    for metric in metrics.METRICS.values():
        assert metric.scale == ("fraction" if metric.name.startswith("rouge") else "percent")
        assert metric.higher_is_better and metric.summary and metric.example
    assert metrics.lookup("pass@10") is metrics.METRICS["pass@k"]
    assert metrics.lookup("pass@") is None and metrics.lookup("bleu") is None


def test_every_entry_carries_one_scorer_and_batch_scorers_take_no_options() -> None:
    for metric in metrics.METRICS.values():
        assert (metric.score is None) != (metric.score_batch is None), metric.name
        assert metric.score_batch is None or not metric.options, metric.name
        assert set(metric.required) <= set(metric.options), metric.name
    with pytest.raises(TypeError, match="exactly one of score and score_batch"):
        Metric("none", "binary", "percent", "no scorer", "-")
    assert metrics.METRICS["pass@k"].columns([1, 10]) == ["pass@1", "pass@10"]
    assert metrics.METRICS["rouge-2"].columns([1, 10]) == ["rouge-2"]


def test_metrics_sharing_a_batch_scorer_are_scored_by_one_call() -> None:
    calls = []

    def both(batch: Batch) -> list[dict[str, float]]:
        calls.append(len(batch.predictions))
        return [{"a": 1.0, "b": 2.0} for _ in batch.predictions]

    a, b = (Metric(name, "continuous", "fraction", "-", "-", score_batch=both) for name in ("a", "b"))
    batch = Batch([["x"], ["y"]], [["x"], ["y"]], [{}, {}])
    assert score_batch([a], batch) == [{"a": 1.0}, {"a": 1.0}]
    assert score_batch([a, b], batch) == [{"a": 1.0, "b": 2.0}] * 2
    assert calls == [2, 2]


@pytest.mark.parametrize(
    ("prediction", "references", "expected"),
    [
        ("The Eiffel Tower!", ["eiffel tower"], 100.0),  # case, punctuation and the article go
        ("Eiffel", ["eiffel tower"], 0.0),
        ("Rome", ["Paris", "rome."], 100.0),  # any reference
    ],
)
def test_exact_match(prediction: str, references: list[str], expected: float) -> None:
    assert score_item("exact-match", prediction, references) == expected


def test_f1_score() -> None:
    # 'red car' vs 'red sports car': 2 shared tokens, precision 2/2, recall 2/3 -> F1 = 0.8
    assert score_item("f1-score", "the red car", ["red sports car"]) == pytest.approx(80.0)
    # the best reference counts: 'blue' shares nothing, 'a red car' matches exactly
    assert score_item("f1-score", "the red car", ["blue", "a red car"]) == pytest.approx(100.0)
    assert score_item("f1-score", "green", ["red sports car"]) == 0.0


def test_rouge_against_hand_counts() -> None:
    # 'the cat sat' vs 'the cat sat down': unigrams P 3/3 R 3/4 -> 6/7; bigrams P 2/2 R 2/3 -> 0.8;
    # LCS 3 -> 6/7
    [scores] = rouge(["the cat sat"], [["the cat sat down"]])
    assert scores["rouge-1"] == pytest.approx(6 / 7)
    assert scores["rouge-2"] == pytest.approx(0.8)
    assert scores["rouge-l"] == pytest.approx(6 / 7)
    best, none = rouge(["the cat sat", "zebra"], [["a dog", "the cat sat"], ["the cat"]])
    assert best == {"rouge-1": 1.0, "rouge-2": 1.0, "rouge-l": 1.0}
    assert none == {"rouge-1": 0.0, "rouge-2": 0.0, "rouge-l": 0.0}


@pytest.mark.parametrize(
    ("prediction", "expected"),
    [
        ("Your order #123 ships Monday.", 100.0),
        ("It SHIPS, Monday!", 100.0),  # normalized: 'it ships monday'
        ("It ships on Monday", 0.0),  # words must be adjacent
        ("reships mondays", 0.0),  # whole words only
    ],
)
def test_contains(prediction: str, expected: float) -> None:
    assert score_item("contains", prediction, ["ships monday"]) == expected


def test_regex_match() -> None:
    options = {"pattern": r"^Ticket \d+"}
    assert score_item("regex-match", "Ticket 42 opened", [], options) == 100.0
    assert score_item("regex-match", "Your Ticket 42", [], options) == 0.0
    assert score_item("regex-match", "ticket 42", [], {"pattern": r"(?i)^ticket \d+"}) == 100.0


def test_numeric_match() -> None:
    assert score_item("numeric-match", "That comes to $1,234.50 in total", ["1234.5"]) == 100.0
    assert score_item("numeric-match", "2 apples and 5 pears: 7", ["7"]) == 100.0  # the last number
    assert score_item("numeric-match", "2 apples and 5 pears: 7", ["5"]) == 0.0
    assert score_item("numeric-match", "pi is 3.14159", ["3.14"], {"tolerance": 0.01}) == 100.0
    assert score_item("numeric-match", "pi is 3.14159", ["3.14"], {"tolerance": 0.001}) == 0.0
    assert score_item("numeric-match", "-4", ["-4.0"]) == 100.0
    assert score_item("numeric-match", "45%", ["45%"]) == 100.0
    assert score_item("numeric-match", "no idea", ["3"]) == 0.0
    with pytest.raises(ReferenceProblem, match="not a number"):
        score_item("numeric-match", "3", ["three"])


def test_json_valid() -> None:
    assert score_item("json-valid", '{"refund": true}', []) == 100.0
    assert score_item("json-valid", "[1, 2]", []) == 100.0
    assert score_item("json-valid", "{refund: true}", []) == 0.0
    assert score_item("json-valid", "", []) == 0.0


def test_json_match() -> None:
    assert score_item("json-match", '{"b": 2.0, "a": [1]}', ['{"a": [1], "b": 2}']) == 100.0
    assert score_item("json-match", '{"a": true}', ['{"a": 1}']) == 0.0  # true is not 1
    assert score_item("json-match", "[2, 1]", ["[1, 2]"]) == 0.0  # arrays keep their order
    assert score_item("json-match", "null", ["null"]) == 100.0
    assert score_item("json-match", "not json", ['{"a": 1}']) == 0.0
    assert score_item("json-match", '{"a": 1}', ["{}", '{"a": 1}']) == 100.0
    with pytest.raises(ReferenceProblem, match="not valid JSON"):
        score_item("json-match", "{}", ["{oops"])


@pytest.mark.parametrize(
    ("prediction", "expected"),
    [
        ("B", 100.0),
        ("(B)", 100.0),
        ("B) Rome", 100.0),
        ("B.", 100.0),
        ("The answer is B", 100.0),
        ("Answer: (b)", 100.0),
        ("rome", 100.0),
        ("A", 0.0),
        ("Berlin", 0.0),
        ("E", 0.0),  # no fifth choice
    ],
)
def test_choice_accuracy(prediction: str, expected: float) -> None:
    choices = ["Paris", "Rome", "Madrid"]
    assert score_item("choice-accuracy", prediction, ["B"], fields={"choices": choices}) == expected


def test_choice_text_wins_over_a_leading_article() -> None:
    choices = ["A plane", "A train"]
    assert choice_index("A train", choices) == 1
    assert choice_index("A", choices) == 0


def test_pass_at_k_runs_the_tests_in_the_sandbox() -> None:
    good = "def add(a, b):\n    return a + b"
    bad = "def add(a, b):\n    return a - b"
    # 5 samples, 2 pass: pass@1 = 2/5; pass@2 = 1 - C(3,2)/C(5,2) = 1 - 3/10; pass@5 = 1
    samples = [[good, bad, bad, good, bad], [bad]]
    batch = Batch(samples, [[], []], [{"tests": "assert add(2, 3) == 5"}] * 2, ks=[1, 2, 5], timeout=5.0)
    p1, p2 = score_batch([metrics.METRICS["pass@k"]], batch)
    assert p1 == pytest.approx({"pass@1": 40.0, "pass@2": 70.0, "pass@5": 100.0})
    assert p2 == {"pass@1": 0.0}


def test_option_problems() -> None:
    assert metrics.option_problems("regex-match", {}) == ["regex-match needs option 'pattern'"]
    assert "not a valid regular expression" in metrics.option_problems("regex-match", {"pattern": "("})[0]
    assert metrics.option_problems("numeric-match", {"tolerance": -1}) == [
        "tolerance must be a number >= 0, got -1"
    ]
    assert metrics.option_problems("exact-match", {"tolerance": 1}) == [
        "unknown option 'tolerance' for exact-match (it takes none)"
    ]
    assert metrics.option_problems("numeric-match", {"tolerance": 0.5}) == []


def test_reference_problems_are_found_before_scoring() -> None:
    assert metrics.reference_problem("numeric-match", ["12"]) is None
    assert metrics.reference_problem("numeric-match", ["twelve"]) == "a reference is not a number"
    assert metrics.reference_problem("json-match", ["{"]) == "a reference is not valid JSON"
    assert metrics.reference_problem("choice-accuracy", ["C"], {"choices": ["x", "y"]}) is not None
    assert metrics.reference_problem("choice-accuracy", ["B"], {"choices": ["x", "y"]}) is None
    assert metrics.reference_problem("exact-match", [""]) is None
