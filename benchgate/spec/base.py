"""Base for every user-facing model: unknown keys are errors, so typos never pass silently."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def field_path(loc: tuple[Any, ...]) -> str:
    """('models', 2, 'base_url') -> 'models[2].base_url'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not str(part).startswith(("function-", "literal[", "tagged-union")):
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def validation_problems(error: ValidationError, format_name: str = "request") -> list[str]:
    """pydantic's errors as 'field.path: message' lines a user can act on."""
    problems = []
    for item in error.errors(include_url=False):
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = f"unknown key (not part of the {format_name} format)"
        problems.append(f"{field_path(item['loc'])}: {message}")
    return problems
