"""Reference points that need no network: classic baselines and a gold-answer calibration model.

`reference` returns the gold answer (a run must score 100 / 1.0 with it: a calibration check of the
whole pipeline); `lead-3` and `sliding-window` are the classic summarization and reading-comprehension
baselines; `baseline` picks the classic baseline of the item's kind. The kind is what the item declares
under fields["kind"] (benchgate.datasets.kinds), set by the task that made it; an item without one
(a custom task's) only has the gold answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from benchgate.datasets.kinds import KIND_FIELD, NEWS_ARTICLE, PASSAGE_QUESTION, PYTHON_FUNCTION
from benchgate.errors import ProviderConfigError
from benchgate.providers.base import Completion, Provider
from benchgate.spec.example import Example
from benchgate.spec.request import ModelSpec

_PTB_CLOSERS = {"''", "'", "-rrb-", ")", '"'}
_PROSE_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")
_WORD = re.compile(r"\w+")
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "in",
        "on",
        "at",
        "to",
        "for",
        "from",
        "by",
        "with",
        "and",
        "or",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "when",
        "where",
        "why",
        "how",
        "did",
        "does",
        "do",
        "that",
        "this",
        "these",
        "those",
        "it",
        "its",
        "as",
        "into",
        "than",
        "then",
        "there",
        "their",
        "they",
        "he",
        "she",
        "his",
        "her",
        "name",
    ]
)
NO_ANSWER_THRESHOLD = 0.5
MAX_ANSWER_TOKENS = 4


def split_sentences(text: str) -> list[str]:
    """PTB-tokenized text (the CNN/DailyMail release) ends sentences at standalone . ! ? tokens."""
    tokens = text.split()
    if not any(token in {".", "!", "?"} for token in tokens):
        return [s.strip() for s in _PROSE_SENTENCE_END.split(text.strip()) if s.strip()]
    sentences, current = [], []
    for i, token in enumerate(tokens):
        current.append(token)
        ends_here = token in {".", "!", "?"} or (
            current[:-1] and token in _PTB_CLOSERS and _ended(current[:-1])
        )
        next_is_closer = i + 1 < len(tokens) and tokens[i + 1] in _PTB_CLOSERS
        if ends_here and not next_is_closer:
            sentences.append(" ".join(current))
            current = []
    if current:
        sentences.append(" ".join(current))
    return sentences


def _ended(tokens: list[str]) -> bool:
    for token in reversed(tokens):
        if token in {".", "!", "?"}:
            return True
        if token not in _PTB_CLOSERS:
            return False
    return False


def lead_3(article: str) -> str:
    return "\n".join(split_sentences(article)[:3])


def sliding_window_answer(context: str, question: str) -> str:
    """Pick the sentence sharing most question words; answer with the nearby words the question lacks.

    Abstains (the SQuAD v2 empty answer) when under half of the question's content words appear in
    the best sentence: the no-answer threshold.
    """
    question_words = {w.lower() for w in _WORD.findall(question)} - _STOPWORDS
    if not question_words:
        return "unanswerable"
    best, best_overlap = "", 0.0
    for sentence in split_sentences(context):
        words = {w.lower() for w in _WORD.findall(sentence)}
        overlap = len(question_words & words) / len(question_words)
        if overlap > best_overlap:
            best, best_overlap = sentence, overlap
    if best_overlap < NO_ANSWER_THRESHOLD:
        return "unanswerable"
    tokens = best.split()
    matched = [i for i, t in enumerate(tokens) if _bare(t) in question_words]
    anchor = matched[-1] if matched else 0
    span = [t for t in tokens[anchor + 1 :] if _bare(t) not in question_words]
    while span and _bare(span[0]) in _STOPWORDS:
        span.pop(0)
    answer = " ".join(span[:MAX_ANSWER_TOKENS]).strip(".,;:!?\"'() ")
    return answer or "unanswerable"


def _bare(token: str) -> str:
    return token.lower().strip(".,;:!?\"'()")


def _first_reference(example: Example) -> str:
    return example.references[0] if example.references else ""


@dataclass(frozen=True)
class Answers:
    """How the builtin models answer one kind of item: its classic baseline (also served under
    `baseline_name`, if it has one of its own) and its gold answer as a model would write it."""

    baseline: Callable[[Example], str]
    baseline_name: str | None = None
    gold: Callable[[Example], str] = _first_reference


ANSWERS: dict[str, Answers] = {
    NEWS_ARTICLE.name: Answers(lambda e: lead_3(e.fields["article"]), "lead-3"),
    PASSAGE_QUESTION.name: Answers(
        lambda e: sliding_window_answer(e.fields["context"], e.fields["question"]),
        "sliding-window",
        gold=lambda e: e.references[0] if e.references else "unanswerable",
    ),
    PYTHON_FUNCTION.name: Answers(
        lambda e: "```python\n    raise NotImplementedError\n```",
        gold=lambda e: "```python\n" + e.fields["prompt"] + e.references[0] + "```",
    ),
}
MODELS = ("reference", "baseline", *(a.baseline_name for a in ANSWERS.values() if a.baseline_name))


class BuiltinProvider(Provider):
    name = "builtin"

    def __init__(self, spec: ModelSpec, api_key: str | None) -> None:
        super().__init__(spec, api_key)
        if spec.model_name not in MODELS:
            raise ProviderConfigError(
                f"unknown builtin model {spec.model_name!r} (builtin models: {', '.join(MODELS)})"
            )

    @property
    def endpoint(self) -> str:
        return "builtin"

    async def complete(self, example: Example, sample_index: int) -> Completion:
        text = self._reply(example)
        return Completion(text=text, finish_reason="stop", input_tokens=None, output_tokens=None)

    def _reply(self, example: Example) -> str:
        model = self.spec.model_name
        answers = ANSWERS.get(example.fields.get(KIND_FIELD, ""))
        if model == "reference":
            return answers.gold(example) if answers else _first_reference(example)
        if answers and model in ("baseline", answers.baseline_name):
            return answers.baseline(example)
        raise ProviderConfigError(f"builtin model {model!r} has no answer for this kind of task")
