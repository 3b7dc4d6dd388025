"""numeric-match: the number a worked answer ends with, against a numeric reference, within a tolerance."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from scorers.metrics.entry import Metric, ReferenceProblem

DEFAULT_TOLERANCE = 1e-6
_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+")


def _as_number(text: str) -> float | None:
    """A reference is a number as a whole: '1,234.5', '$12', '45%' (currency and % stripped)."""
    cleaned = text.strip().strip("$€£%").replace(",", "").strip()
    try:
        value = float(cleaned)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def last_number(text: str) -> float | None:
    """The last number written in a text (thousands separators allowed), as worked answers end."""
    found = _NUMBER.findall(text)
    return float(found[-1].replace(",", "")) if found else None


def reference_numbers(references: Sequence[str]) -> list[float]:
    numbers = [_as_number(r) for r in references]
    if None in numbers:  # the value is not repeated: messages reach API callers
        raise ReferenceProblem("a reference is not a number")
    return [n for n in numbers if n is not None]


def numeric_match(prediction: str, references: Sequence[str], tolerance: float = DEFAULT_TOLERANCE) -> float:
    numbers = reference_numbers(references)
    predicted = last_number(prediction)
    if predicted is None:
        return 0.0
    return 100.0 * any(abs(predicted - n) <= tolerance for n in numbers)


def _check_references(references: Sequence[str], fields: Mapping[str, Any]) -> None:
    reference_numbers(references)


def _option_problems(options: Mapping[str, Any]) -> list[str]:
    tolerance = options.get("tolerance", DEFAULT_TOLERANCE)
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or tolerance < 0:
        return [f"tolerance must be a number >= 0, got {tolerance!r}"]
    return []


METRICS = (
    Metric(
        "numeric-match",
        "binary",
        "percent",
        "100 if the last number in the prediction is within `tolerance` of a numeric reference",
        "prediction 'That comes to $1,234.50 in total' vs reference '1234.5' -> 100",
        score=lambda prediction, references, options, fields: numeric_match(
            prediction, references, float(options.get("tolerance", DEFAULT_TOLERANCE))
        ),
        check_options=_option_problems,
        check_references=_check_references,
        options={"tolerance": "largest absolute difference that still matches (default 1e-6)"},
    ),
)
