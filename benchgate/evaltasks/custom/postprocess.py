"""The `postprocess` steps that turn a custom task's raw reply into the prediction its metrics score."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

Step = str | dict[str, Any]
STEPS = ("strip", "first-line", "code-block")
DEFAULT_STEPS: tuple[Step, ...] = ("strip",)
_FENCE = re.compile(r"```[\w+.-]*[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)


def step_problems(step: Any) -> list[str]:
    """What is wrong with one step of a request, as messages."""
    if isinstance(step, str):
        return (
            []
            if step in STEPS
            else [f"unknown step {step!r} (steps: {', '.join(STEPS)}, {{regex: <pattern>}})"]
        )
    if set(step) != {"regex"} or not isinstance(step["regex"], str):
        return [f"expected one of {', '.join(STEPS)} or {{regex: <pattern>}}, got {step}"]
    try:
        re.compile(step["regex"])
    except re.error as error:
        return [f"regex {step['regex']!r} is not a valid regular expression: {error}"]
    return []


def postprocess(steps: Sequence[Step] | None, output: str) -> str:
    """Apply the steps in order; no steps means 'strip'."""
    text = output
    for step in steps or DEFAULT_STEPS:
        text = _apply(step, text)
    return text


def _apply(step: Step, text: str) -> str:
    """One step; a regex that does not match yields '' (the reply had no answer)."""
    if step == "strip":
        return text.strip()
    if step == "first-line":
        return next((line.strip() for line in text.splitlines() if line.strip()), "")
    if step == "code-block":
        match = _FENCE.search(text)
        return match.group(1) if match else text
    assert isinstance(step, dict)
    match = re.search(step["regex"], text, re.DOTALL)
    if match is None:
        return ""
    return (
        next((g for g in match.groups() if g is not None), "") if match.groups() else match.group(0)
    ).strip()
