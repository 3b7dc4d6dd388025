"""regex-match: the reply has the required form (a ticket number, a heading), whatever the reference."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from scorers.metrics.entry import Metric


def regex_match(prediction: str, pattern: str) -> float:
    return 100.0 * (re.search(pattern, prediction) is not None)


def _option_problems(options: Mapping[str, Any]) -> list[str]:
    if "pattern" not in options:
        return []
    try:
        re.compile(str(options["pattern"]))
    except re.error as error:
        return [f"pattern {options['pattern']!r} is not a valid regular expression: {error}"]
    return []


METRICS = (
    Metric(
        "regex-match",
        "binary",
        "percent",
        "100 if the regular expression `pattern` is found in the prediction (Python re.search)",
        "pattern '^Ticket \\d+' and prediction 'Ticket 42 opened' -> 100",
        score=lambda prediction, references, options, fields: regex_match(
            prediction, str(options["pattern"])
        ),
        check_options=_option_problems,
        needs_reference=False,
        options={"pattern": "Python regular expression searched in the prediction (required)"},
        required=("pattern",),
    ),
)
