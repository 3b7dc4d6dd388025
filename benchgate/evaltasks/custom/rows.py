"""A custom task's rows as the templates and settings see them: fields by name or dotted path, stable ids."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from benchgate.datasets.tabular import Row


class ItemProblem(Exception):
    """One row cannot become a scorable item; `field` is the task setting it concerns."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field

    def describe(self) -> str:
        return f"{self.field}: {self}"


class LimitProblem(ItemProblem):
    """A template went past a rendering limit: a problem of the template more than of the row."""

    PREFIX = "template exceeds the rendering limit"


def is_template(text: str) -> bool:
    """`target` and `tests` name a field, unless they are a Jinja template."""
    return "{{" in text or "{%" in text


def lookup(row: Row, name: str) -> Any:
    """A field by name, or a dotted path into nested objects ('answers.text' in SQuAD's hub rows)."""
    if name in row:
        return row[name]
    value: Any = row
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(name)
        value = value[part]
    return value


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def row_id(row: Row) -> str:
    """Stable id of a row without an id field: a digest of its content, independent of file order."""
    content = json.dumps(row, sort_keys=True, ensure_ascii=False, default=str)
    return "row-" + hashlib.sha1(content.encode("utf-8")).hexdigest()[:16]
