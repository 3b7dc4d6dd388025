"""SQuAD v2.0 exact match and F1, as the official evaluation script (evaluate-v2.0.py) defines them.

Reimplemented from the metric definition so scores are comparable with published SQuAD v2 numbers:
answers are lower-cased, stripped of punctuation and of the articles a/an/the, and whitespace-collapsed;
F1 is token overlap; each question takes the best score over its gold answers; an unanswerable question
has the single gold answer "" (a prediction scores 1 only if it normalizes to nothing).
"""

from __future__ import annotations

import re
import string
from collections import Counter

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_DROP_PUNCTUATION = str.maketrans("", "", string.punctuation)  # as the script's per-character filter, in C
_PUNCTUATION_BYTES = string.punctuation.encode()


def normalize_answer(s: str) -> str:
    """Lower-case, drop ASCII punctuation, then the articles a/an/the, then collapse whitespace.

    An ASCII text drops its punctuation as bytes: 0.2 µs instead of str.translate's 1.4 µs."""
    text = s.lower()
    if text.isascii():
        text = text.encode().translate(None, _PUNCTUATION_BYTES).decode()
    else:
        text = text.translate(_DROP_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _effective_golds(golds: list[str]) -> list[str]:
    """Normalized golds that are not empty; none left means unanswerable, whose only correct answer is ""."""
    kept = [gold for gold in map(normalize_answer, golds) if gold]
    return kept or [""]


def _f1(gold_tokens: list[str], pred_tokens: list[str]) -> float:
    if not gold_tokens or not pred_tokens:
        # An empty side (no answer) scores 1 only when both are empty.
        return float(gold_tokens == pred_tokens)
    same = sum((Counter(gold_tokens) & Counter(pred_tokens)).values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return (2 * precision * recall) / (precision + recall)


def exact_match(prediction: str, golds: list[str]) -> float:
    """1.0 if the normalized prediction equals any normalized gold, else 0.0; golds=[] means unanswerable.

    Each text is normalized once (the script normalizes a gold twice and the prediction per gold)."""
    return float(normalize_answer(prediction) in _effective_golds(golds))


def f1(prediction: str, golds: list[str]) -> float:
    """Best token-overlap F1 (0..1) over the golds; golds=[] means unanswerable (gold "")."""
    pred_tokens = normalize_answer(prediction).split()
    return max(_f1(gold.split(), pred_tokens) for gold in _effective_golds(golds))


def evaluate_squad_v2(golds: dict[str, list[str]], predictions: dict[str, str]) -> dict[str, float | int]:
    """Aggregate EM/F1 over every question in `golds`, with the official script's keys (percentages).

    A question is "HasAns" when its gold list is non-empty. A question without a prediction is scored as
    the prediction "" (abstaining), so a partial predictions file is never silently scored on a subset.
    (The official script prints "Missing prediction" and skips the question, and its HasAns/NoAns
    breakdown then fails with a KeyError, so it gives no number to match for that case.)
    """
    exact: dict[str, float] = {}
    f1s: dict[str, float] = {}
    for qid, answers in golds.items():
        prediction = predictions.get(qid, "")
        exact[qid] = exact_match(prediction, answers)
        f1s[qid] = f1(prediction, answers)

    def block(qids: list[str]) -> tuple[float, float, int]:
        total = len(qids)
        return (
            100.0 * sum(exact[q] for q in qids) / total,
            100.0 * sum(f1s[q] for q in qids) / total,
            total,
        )

    all_qids = list(golds)
    result: dict[str, float | int] = {}
    if all_qids:
        result["exact"], result["f1"], result["total"] = block(all_qids)
    else:
        result.update(exact=0.0, f1=0.0, total=0)
    has_ans = [q for q in all_qids if golds[q]]
    no_ans = [q for q in all_qids if not golds[q]]
    # Like the official script, a breakdown appears only when that kind of question exists.
    if has_ans:
        result["HasAns_exact"], result["HasAns_f1"], result["HasAns_total"] = block(has_ans)
    if no_ans:
        result["NoAns_exact"], result["NoAns_f1"], result["NoAns_total"] = block(no_ans)
    return result
