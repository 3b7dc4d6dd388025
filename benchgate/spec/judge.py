"""Judge metrics as a request declares them, and the built-in judge prompts (quoted in docs/custom-tasks.md).

A judge metric is an entry of a custom task's `metrics` whose scorer is a model of the request:

    metrics:
      - {rubric: {judge: gpt-judge, rubric: correctness, scale: [1, 5]}}
      - {pairwise: {judge: gpt-judge, baseline: base-v1}}

The shapes live here, below everything, because request validation (the custom task's fields, the
models the request names) and the judging machinery (benchgate.judges) both read them.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, ValidationError

from benchgate.spec.base import StrictModel, validation_problems

JUDGE_KINDS = ("rubric", "pairwise")
RUBRIC_VARIABLES = ("answer", "reference", "references", "input", "conversation", "scale_low", "scale_high")
"""What a rubric template sees besides the dataset fields it names (the judge variables win a clash)."""
PAIRWISE_VARIABLES = ("answer_a", "answer_b", "reference", "references", "input", "conversation")

_SCORE_INSTRUCTION = (
    "Reason briefly, then end your reply with one final line of the form `Score: N`, where N is a "
    "whole number from {{ scale_low }} to {{ scale_high }} and nothing else follows."
)
BUILTIN_RUBRICS: dict[str, str] = {
    "correctness": (
        "You are grading an answer against a reference answer.\n\n"
        "[Conversation]\n{{ conversation }}\n\n"
        "[Reference answer]\n{{ reference }}\n\n"
        "[Answer to grade]\n{{ answer }}\n\n"
        "Score how correct the answer is compared with the reference: {{ scale_high }} means it states "
        "everything the reference states and nothing that contradicts it, {{ scale_low }} means it is "
        "wrong or contradicts the reference. Wording and length do not matter, only correctness.\n"
        + _SCORE_INSTRUCTION
    ),
    "helpfulness": (
        "You are grading how helpful an assistant's reply is to the user.\n\n"
        "[Conversation]\n{{ conversation }}\n\n"
        "[Reply to grade]\n{{ answer }}\n\n"
        "Score how well the reply addresses the user's last message: {{ scale_high }} means it fully "
        "resolves the request, clearly and politely, {{ scale_low }} means it ignores or fails the "
        "request.\n" + _SCORE_INSTRUCTION
    ),
    "faithfulness": (
        "You are checking whether an answer is supported by a given context.\n\n"
        "[Context]\n{{ context }}\n\n"
        "[Conversation]\n{{ conversation }}\n\n"
        "[Answer to check]\n{{ answer }}\n\n"
        "Score how faithful the answer is to the context: {{ scale_high }} means every claim in it is "
        "supported by the context, {{ scale_low }} means it makes claims the context contradicts or does "
        "not support.\n" + _SCORE_INSTRUCTION
    ),
}
BUILTIN_PAIRWISE = (
    "You are comparing two replies to the same conversation.\n\n"
    "[Conversation]\n{{ conversation }}\n\n"
    "{% if reference %}[Reference answer]\n{{ reference }}\n\n{% endif %}"
    "[Reply A]\n{{ answer_a }}\n\n"
    "[Reply B]\n{{ answer_b }}\n\n"
    "Which reply answers the user's last message better (correct, helpful, clear)? The order of the "
    "replies says nothing about their quality. Reason briefly, then end your reply with one final line: "
    "`Winner: A`, `Winner: B` or `Winner: tie`."
)
_SCORE_LINE = re.compile(r"score:\s*(-?\d+)", re.IGNORECASE)
_WINNER_LINE = re.compile(r"winner:\s*(a|b|tie)", re.IGNORECASE)


class RubricMetric(StrictModel):
    """The judge model grades each answer on `scale` with `rubric` (a built-in name or a Jinja2 template)."""

    judge: str
    rubric: str
    scale: list[int] | None = None
    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")

    @property
    def template(self) -> str:
        return BUILTIN_RUBRICS.get(self.rubric, self.rubric)

    @property
    def metric_name(self) -> str:
        return self.name or (self.rubric if self.rubric in BUILTIN_RUBRICS else "rubric")

    @property
    def bounds(self) -> tuple[int, int]:
        assert self.scale is not None and len(self.scale) == 2  # checked by problems()
        return self.scale[0], self.scale[1]

    def problems(self) -> list[str]:
        problems = []
        if self.rubric not in BUILTIN_RUBRICS and not is_template(self.rubric):
            problems.append(
                f"rubric: unknown rubric {self.rubric!r} (built in: {', '.join(BUILTIN_RUBRICS)}; "
                "or a Jinja2 template)"
            )
        if self.rubric not in BUILTIN_RUBRICS and self.name is None:
            problems.append("name: a rubric of your own needs a name (the metric's name in the report)")
        if self.scale is None or len(self.scale) != 2 or self.scale[0] >= self.scale[1]:
            problems.append(
                "scale: the scale's bounds [lowest, highest], lowest < highest, e.g. [1, 5] or [0, 1]"
            )
        return problems

    def parse(self, verdict: str) -> float:
        """The verdict's score as a percent of the scale; ValueError unless its last line is `Score: N`
        with N on the scale (a verdict that cannot be read is a judge error, never a score of 0)."""
        low, high = self.bounds
        lines = [line.strip().strip("*`").strip() for line in verdict.strip().splitlines()]
        match = _SCORE_LINE.fullmatch(lines[-1]) if lines else None
        if match is None:
            raise ValueError("the verdict does not end with a `Score: N` line")
        score = int(match.group(1))
        if not low <= score <= high:
            raise ValueError(f"the verdict's score is outside the scale [{low}, {high}]")
        return 100.0 * (score - low) / (high - low)


class PairwiseMetric(StrictModel):
    """The judge model compares the candidate's answer with `baseline`'s, in both orders."""

    judge: str
    baseline: str | None = None
    prompt: str | None = None
    name: str = Field(default="win-rate", pattern=r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")

    @property
    def metric_name(self) -> str:
        return self.name

    @property
    def template(self) -> str:
        return self.prompt or BUILTIN_PAIRWISE

    def problems(self) -> list[str]:
        problems = []
        if self.baseline is None:
            problems.append(
                "baseline: pairwise needs the baseline model's id (whose answers the candidate's meet)"
            )
        if self.prompt is not None and not is_template(self.prompt):
            problems.append("prompt: a Jinja2 template using answer_a and answer_b")
        return problems

    @staticmethod
    def parse(verdict: str) -> str:
        """'a', 'b' or 'tie' from the last line `Winner: A|B|tie`; ValueError otherwise."""
        lines = [line.strip().strip("*`").strip() for line in verdict.strip().splitlines()]
        match = _WINNER_LINE.fullmatch(lines[-1]) if lines else None
        if match is None:
            raise ValueError("the verdict does not end with a `Winner: A`, `Winner: B` or `Winner: tie` line")
        return match.group(1).lower()


JudgeMetric = RubricMetric | PairwiseMetric


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text


def judge_metric(kind: str, options: Any) -> tuple[JudgeMetric | None, list[str]]:
    """A `{rubric: {...}}` or `{pairwise: {...}}` entry read, with its problems as 'key: message'."""
    model = RubricMetric if kind == "rubric" else PairwiseMetric
    try:
        metric = model.model_validate(options)
    except ValidationError as error:
        return None, validation_problems(error)
    return metric, metric.problems()


def judge_metrics(entries: list[str | dict[str, Any]] | None) -> list[tuple[int, JudgeMetric]]:
    """The valid judge metrics of a task's `metrics`, with their positions (validation reports the rest)."""
    found = []
    for i, entry in enumerate(entries or []):
        if isinstance(entry, dict) and len(entry) == 1:
            kind, options = next(iter(entry.items()))
            if kind in JUDGE_KINDS:
                metric, problems = judge_metric(kind, options)
                if metric is not None and not problems:
                    found.append((i, metric))
    return found
