"""json-valid and json-match: replies that must be machine-readable, compared as JSON values."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from scorers.metrics.entry import Metric, ReferenceProblem


def _canonical(value: Any) -> Any:
    """JSON value in a form where equality is JSON equality: 2 == 2.0, but true != 1, key order ignored."""
    if isinstance(value, bool) or value is None:
        return ("literal", value)
    if isinstance(value, int | float):
        return ("number", float(value))
    if isinstance(value, str):
        return ("string", value)
    if isinstance(value, list):
        return ("array", tuple(_canonical(v) for v in value))
    return ("object", tuple(sorted((k, _canonical(v)) for k, v in value.items())))


def _parse_json(text: str) -> tuple[bool, Any]:
    try:
        return True, json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return False, None


def json_valid(prediction: str) -> float:
    return 100.0 * _parse_json(prediction)[0]


def reference_values(references: Sequence[str]) -> list[Any]:
    """The references as canonical JSON values; one that does not parse is the item's problem."""
    targets = []
    for reference in references:
        ok, value = _parse_json(reference)
        if not ok:
            raise ReferenceProblem("a reference is not valid JSON")
        targets.append(_canonical(value))
    return targets


def json_match(prediction: str, references: Sequence[str]) -> float:
    targets = reference_values(references)
    ok, value = _parse_json(prediction)
    return 100.0 * (ok and _canonical(value) in targets)


def _check_references(references: Sequence[str], fields: Mapping[str, Any]) -> None:
    reference_values(references)


METRICS = (
    Metric(
        "json-valid",
        "binary",
        "percent",
        "100 if the prediction parses as JSON",
        "prediction '{\"refund\": true}' -> 100; prediction '{refund: true}' -> 0",
        score=lambda prediction, references, options, fields: json_valid(prediction),
        needs_reference=False,
    ),
    Metric(
        "json-match",
        "binary",
        "percent",
        "100 if the prediction parses as JSON equal to a reference's JSON (key order and number "
        "spelling ignored; true is not 1)",
        'prediction \'{"b": 2.0, "a": [1]}\' vs reference \'{"a": [1], "b": 2}\' -> 100',
        score=lambda prediction, references, options, fields: json_match(prediction, references),
        check_references=_check_references,
    ),
)
