"""choice-accuracy: which option a reply picks, by letter or by the option's text.

The item's `choices` field holds the options; its references hold the correct option's letter (the
custom task resolves every way a target can name its option to that letter).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from scorers.metrics.entry import Metric, ReferenceProblem
from scorers.squad import normalize_answer

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LEADING_LETTER = re.compile(r"^(?:\(([A-Z])\)|([A-Z])(?=[.):]|$))")
_ANSWER_LETTER = re.compile(r"\b(?:answer|option|choice)\s*(?:is)?\s*:?\s*\(?([A-Z])\)?(?![\w])", re.I)


def choice_index(text: str, choices: Sequence[str]) -> int | None:
    """Which choice a prediction (or a target) names: by letter, or by the choice's (normalized) text."""
    stripped = text.strip()
    normalized = normalize_answer(stripped)
    matches = [i for i, choice in enumerate(choices) if normalize_answer(str(choice)) == normalized]
    if len(matches) == 1:
        return matches[0]
    for pattern in (_LEADING_LETTER, _ANSWER_LETTER):
        match = pattern.search(stripped)
        letter = match and next(g for g in match.groups() if g)
        if letter and LETTERS.index(letter.upper()) < len(choices):
            return LETTERS.index(letter.upper())
    return None


def correct_choices(references: Sequence[str], fields: Mapping[str, Any]) -> set[int]:
    choices = fields.get("choices", ())
    correct = {choice_index(r, choices) for r in references}
    if None in correct:
        raise ReferenceProblem(f"a reference is not one of the {len(choices)} choices")
    return {i for i in correct if i is not None}


def choice_accuracy(prediction: str, references: Sequence[str], fields: Mapping[str, Any]) -> float:
    return 100.0 * (
        choice_index(prediction, fields.get("choices", ())) in correct_choices(references, fields)
    )


def _check_references(references: Sequence[str], fields: Mapping[str, Any]) -> None:
    correct_choices(references, fields)


METRICS = (
    Metric(
        "choice-accuracy",
        "binary",
        "percent",
        "100 if the prediction picks the correct choice, by letter ('B', '(B)', 'B) ...', "
        "'Answer: B') or by the choice's text",
        "choices ['Paris', 'Rome'], target 'Rome': prediction 'B' -> 100, 'rome' -> 100, 'A' -> 0",
        score=lambda prediction, references, options, fields: choice_accuracy(prediction, references, fields),
        check_references=_check_references,
        needs=("choices",),
    ),
)
