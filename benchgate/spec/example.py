"""The unit every evaluation task produces and every provider consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Example:
    """One item of an evaluation task.

    `messages` is what a chat model sees; `references` are the gold answers the scorer uses;
    `fields` keeps the raw row so built-in baselines and scorers can reach task data
    (an article, a context, a HumanEval problem) without re-reading the dataset.
    """

    example_id: str
    messages: list[dict[str, str]]
    references: list[str]
    fields: dict[str, Any] = field(default_factory=dict)
