"""The built-in baselines are the classic ones: Lead-3 reproduces the reference Lead-3 on the full split."""

from __future__ import annotations

import json

import pytest

from benchgate.datasets.cnn_dailymail import read_cnn_dailymail
from benchgate.providers.builtin import lead_3, sliding_window_answer, split_sentences
from tests.support.test_data import DataFile, reference_scores


@pytest.fixture(scope="module")
def cnn(data_file: DataFile) -> list[dict[str, str]]:
    return list(read_cnn_dailymail(str(data_file("cnn_dailymail/test.jsonl"))))


def test_lead3_reproduces_the_reference_lead3_on_all_11490_articles(
    cnn: list[dict[str, str]], data_file: DataFile
) -> None:
    """Identical summaries mean identical ROUGE: 40.08/17.50/36.37 with rouge-score (parity tests),
    within 0.4 points of See et al.'s published Lead-3 (40.34/17.70/36.57)."""
    references = {}
    with data_file("cnn_dailymail/lead3_predictions.jsonl").open() as handle:
        for line in handle:
            row = json.loads(line)
            references[row["id"]] = row["lead3"]
    assert len(cnn) == len(references) == 11_490
    mismatched = [row["id"] for row in cnn if lead_3(row["article"]) != references[row["id"]]]
    assert mismatched == []
    scores = reference_scores("cnn_dailymail")
    published = scores["published_lead3_see_et_al_2017_pyrouge"]
    ours = scores["rouge_score_results"]
    for metric, published_name in (("rouge1", "rouge1"), ("rouge2", "rouge2"), ("rougeLsum", "rougeL")):
        assert abs(ours[metric]["fmeasure"] - published[published_name]) < 0.4


def test_prose_sentences_split_on_terminal_punctuation() -> None:
    text = 'The mayor spoke. "We will rebuild," she said! Will it work? Nobody knows.'
    assert split_sentences(text) == [
        "The mayor spoke.",
        '"We will rebuild," she said!',
        "Will it work?",
        "Nobody knows.",
    ]
    assert lead_3(text) == 'The mayor spoke.\n"We will rebuild," she said!\nWill it work?'


def test_sliding_window_answers_from_the_best_sentence_and_abstains_below_threshold() -> None:
    context = "The bridge opened in 1932. It was designed by Ada Ferris. Tolls were abolished later."
    assert sliding_window_answer(context, "The bridge opened in which year?") == "1932"
    assert sliding_window_answer(context, "Who painted the cathedral ceiling?") == "unanswerable"
