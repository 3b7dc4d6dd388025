"""Request and rules files: YAML or JSON, decoded strictly before validation.

A duplicated key is an error, never last-wins: `{at_least: 85, at_least: 60}` would otherwise gate on
60 without a word. Nesting is bounded, so a hostile file is an exit 2, not a RecursionError.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from benchgate.errors import RequestError

MAX_DEPTH = 64


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a mapping that repeats a key."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                mark = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} at line {mark.line + 1}, column {mark.column + 1}"
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        repeated = next(key for key, _ in pairs if key in seen or seen.add(key))  # type: ignore[func-returns-value]
        raise ValueError(f"duplicate key {repeated!r}")
    return data


def _depth_problem(value: Any) -> str | None:
    stack = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        if depth > MAX_DEPTH:
            return f"(file): nested more than {MAX_DEPTH} levels deep"
        if isinstance(current, dict):
            stack.extend((v, depth + 1) for v in current.values())
        elif isinstance(current, list):
            stack.extend((v, depth + 1) for v in current)
    return None


def decode_structured(text: str, *, is_json: bool, source: str | None = None) -> Any:
    """Decode a request or rules document; every failure is a RequestError naming where."""
    try:
        if is_json:
            data = json.loads(text, object_pairs_hook=_unique_pairs)
        else:
            data = yaml.load(text, Loader=_StrictLoader)
    except json.JSONDecodeError as error:
        raise RequestError(
            [f"(file): invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}"], source
        ) from None
    except yaml.YAMLError as error:
        raise RequestError([f"(file): invalid YAML: {error}"], source) from None
    except ValueError as error:  # a duplicate key in JSON
        raise RequestError([f"(file): invalid JSON: {error}"], source) from None
    except RecursionError:
        raise RequestError([f"(file): nested more than {MAX_DEPTH} levels deep"], source) from None
    problem = _depth_problem(data)
    if problem:
        raise RequestError([problem], source)
    return data


def read_structured_file(path: str | Path) -> Any:
    """YAML or JSON (JSON is YAML, but JSON errors read better from json)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RequestError([f"(file): cannot read {path}: {error}"], str(path)) from None
    return decode_structured(text, is_json=path.suffix.lower() == ".json", source=str(path))
