"""`benchgate score`: score predictions made elsewhere, read in each ecosystem's own format.

Each built-in task's `score_offline` reads its format and scores it as the reference implementation
does; this module picks the task and writes the per-item lines. Every metric gets a 95% percentile
bootstrap CI over items (problems for pass@k) under "ci".
"""

from __future__ import annotations

import json
from typing import Any

import fsspec

from benchgate.errors import ConfigurationError
from benchgate.evaltasks import BUILTIN, BUILTIN_TASKS, builtin_task
from benchgate.evaltasks.base import CodeChecker

__all__ = ["CodeChecker", "score_predictions"]


def score_predictions(
    task: str,
    predictions_path: str,
    dataset_path: str | None,
    out_path: str | None,
    *,
    code_checker: CodeChecker | None = None,
) -> dict[str, Any]:
    """Score a predictions file; returns the metrics with the report's names, plus "n" and "ci".

    `out_path` (any fsspec URL) receives one JSON line per scored item. For code, `code_checker` None
    runs the samples in benchgate's sandbox.
    """
    if task not in BUILTIN:
        raise ConfigurationError(
            f"unknown task {task!r}; `benchgate score` supports {', '.join(BUILTIN_TASKS)}"
        )
    scores = builtin_task(task).score_offline(predictions_path, dataset_path, code_checker=code_checker)
    if out_path is not None:
        with fsspec.open(out_path, "wt", encoding="utf-8") as out:
            for row in scores.rows:
                out.write(json.dumps(row) + "\n")
    return scores.metrics
