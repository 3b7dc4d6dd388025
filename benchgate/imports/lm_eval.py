"""lm-evaluation-harness 0.4 logs: the per-item records of `--log_samples` and the run's results file.

For each model lm-eval writes `results_<time>.json` (the model's name, each task's aggregates, the metrics'
directions) and, with `--log_samples`, one `samples_<task>_<time>.jsonl` per task: a line per document and
filter carrying each metric's value for that document. Either file may be given; the other is found beside
it by the shared <time>, because only the results file names the model. The item id is the document's
`doc_id` (its position in the task's evaluation split), the same for every model run on the task.
Metrics are named as in the results file, without the default filter: `exact_match`, or
`exact_match,strict-match` under another filter.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from benchgate.errors import DatasetError
from benchgate.imports.base import Content, ImportedRun, as_number, score_frame

TIME = r"\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}(?:\.\d+)?"
SAMPLES_NAME = re.compile(rf"samples_(?P<task>.+)_(?P<time>{TIME})\.jsonl")
RESULTS_NAME = re.compile(rf"results_(?P<time>{TIME})\.json")
DEFAULT_FILTER = "none"


class LmEvalReader:
    formats = (
        "lm-evaluation-harness 0.4.x (--log_samples: samples_<task>_<time>.jsonl beside results_<time>.json)"
    )

    def detects(self, content: Content) -> bool:
        value = content.value
        if not isinstance(value, dict) or content.kind not in ("json", "jsonl"):
            return False
        return _is_results(value) or _is_sample(value)

    def read(self, content: Content) -> list[ImportedRun]:
        path = content.path
        if content.kind == "json" and _is_results(content.value):
            found = RESULTS_NAME.fullmatch(path.name)
            if found is None:
                raise DatasetError(
                    f"{path}: lm-eval results files are named results_<time>.json; cannot find its samples"
                )
            results = _checked(path, content.value)
            runs = [
                _run(samples, task, path, results)
                for task in sorted(results["results"])
                if (samples := path.parent / f"samples_{task}_{found['time']}.jsonl").exists()
            ]
            if not runs:
                raise DatasetError(
                    f"{path}: no samples_<task>_{found['time']}.jsonl beside it; "
                    "run lm-eval with --log_samples"
                )
            return runs
        found = SAMPLES_NAME.fullmatch(path.name)
        results_path = path.parent / f"results_{found['time']}.json" if found else None
        if found is None or results_path is None or not results_path.exists():
            raise DatasetError(
                f"{path}: the results_<time>.json lm-eval wrote with these samples is not beside them "
                "(it names the model); give the files as lm-eval named them"
            )
        return [_run(path, found["task"], results_path, _checked(results_path, _load(results_path)))]


def _is_results(value: dict[str, Any]) -> bool:
    return "results" in value and "configs" in value and "versions" in value


def _is_sample(value: dict[str, Any]) -> bool:
    return "filtered_resps" in value or ("doc" in value and "resps" in value)


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"{path}: cannot read: {error}") from None


def _checked(path: Path, results: Any) -> dict[str, Any]:
    """The results file, if it is one of the versions read (0.4.x names its version and its model)."""
    version = results.get("lm_eval_version") if isinstance(results, dict) else None
    if not isinstance(version, str) or not version.startswith("0.4."):
        raise DatasetError(
            f"{path}: lm-eval results of version {version or 'unknown'}; benchgate reads lm-eval 0.4.x "
            "results files (with lm_eval_version and model_name)"
        )
    if not isinstance(results.get("model_name"), str) or not results["model_name"]:
        raise DatasetError(f"{path}: lm-eval results without a model_name")
    return results


def _run(samples: Path, task: str, results_path: Path, results: dict[str, Any]) -> ImportedRun:
    aggregates = results["results"].get(task)
    if not isinstance(aggregates, dict):
        raise DatasetError(f"{samples}: task {task!r} is not in {results_path.name}")
    keys = {
        key: key.split(",", 1)
        for key, value in aggregates.items()
        if "," in key and "_stderr," not in key and as_number(value) is not None
    }
    names = {key: metric if where == DEFAULT_FILTER else key for key, (metric, where) in keys.items()}
    directions = results.get("higher_is_better", {}).get(task, {})
    items: dict[str, dict[str, float]] = {}
    seen: set[tuple[str, str]] = set()
    skipped: dict[str, str] = {}
    for number, record in _records(samples):
        if not isinstance(record, dict) or record.get("doc_id") is None:
            raise DatasetError(f"{samples}, line {number}: an item without a doc_id; items cannot be paired")
        example_id, where = str(record["doc_id"]), str(record.get("filter", DEFAULT_FILTER))
        if (example_id, where) in seen:
            raise DatasetError(
                f"{samples}, line {number}: doc_id {example_id} occurs twice under filter {where}"
            )
        seen.add((example_id, where))
        values = items.setdefault(example_id, {})
        for key, (metric, key_filter) in keys.items():
            if key_filter != where or metric not in record:
                continue
            number_value = as_number(record[metric])
            if number_value is None:
                skipped[names[key]] = "its per-item values are not numbers (a corpus-level metric)"
            else:
                values[names[key]] = number_value
    metrics = [names[key] for key in keys if names[key] not in skipped]
    config = results.get("configs", {}).get(task, {})
    dataset = "/".join(str(part) for part in (config.get("dataset_path"), config.get("dataset_name")) if part)
    return ImportedRun(
        source=str(samples),
        tool=f"lm-eval {results['lm_eval_version']}",
        model=results["model_name"],
        task=task,
        dataset=dataset or task,
        scores=score_frame(samples, list(items.items()), metrics),
        reported={names[key]: float(aggregates[key]) for key in keys if names[key] in metrics},
        higher_is_better={
            names[key]: bool(directions.get(keys[key][0], True)) for key in keys if names[key] in metrics
        },
        skipped=[f"{metric}: {why}" for metric, why in sorted(skipped.items())],
    )


def _records(path: Path) -> list[tuple[int, Any]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: cannot read: {error}") from None
    records = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                records.append((number, json.loads(line)))
            except json.JSONDecodeError as error:
                raise DatasetError(f"{path}, line {number}: not JSON: {error}") from None
    return records
