"""lm-evaluation-harness `--log_samples` output, as lm-eval 0.4.13 wrote it, read into per-item scores.

The reference is lm-eval's own results file: the mean of the imported items must be what it reported.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchgate.errors import DatasetError
from benchgate.imports import import_files, read_file
from benchgate.store import Store
from tests.imports.recorded import (
    BASELINE_WRONG,
    CANDIDATE_VERBOSE,
    CANDIDATE_WRONG,
    ITEMS,
    MODELS,
    lm_eval_files,
    lm_eval_results,
)

TASK = "arithmetic_local"


@pytest.mark.parametrize("model", MODELS)
def test_items_and_their_mean_are_what_lm_eval_recorded_and_reported(model: str) -> None:
    samples, _ = lm_eval_files(model)
    (run,) = read_file(samples)
    results = lm_eval_results(model)
    assert (run.model, run.task, run.tool) == (model, TASK, "lm-eval 0.4.13")
    assert list(run.scores.columns) == ["example_id", "exact_match"]
    assert list(run.scores["example_id"]) == [str(i) for i in range(ITEMS)]  # lm-eval's doc_id
    assert run.scores["exact_match"].mean() == pytest.approx(results["results"][TASK]["exact_match,none"])
    assert run.reported == {"exact_match": results["results"][TASK]["exact_match,none"]}
    assert run.higher_is_better == {"exact_match": True}
    records = [json.loads(line) for line in samples.read_text().splitlines()]
    assert run.scores["exact_match"].tolist() == [r["exact_match"] for r in records]


def test_the_candidate_misses_exactly_the_items_the_reply_rule_makes_it_miss() -> None:
    baseline, candidate = (read_file(lm_eval_files(model)[0])[0].scores for model in MODELS)
    assert set(baseline.index[baseline["exact_match"] == 0]) == BASELINE_WRONG
    # a verbose right answer is not an exact match
    assert set(candidate.index[candidate["exact_match"] == 0]) == CANDIDATE_WRONG | CANDIDATE_VERBOSE


def test_the_results_file_reads_as_its_samples() -> None:
    samples, results = lm_eval_files(MODELS[1])
    (from_results,) = read_file(results)
    (from_samples,) = read_file(samples)
    assert from_results.source == from_samples.source == str(samples)
    assert from_results.scores.equals(from_samples.scores)


def _copy_run(model: str, target: Path) -> tuple[Path, Path]:
    samples, results = lm_eval_files(model)
    return Path(shutil.copy(samples, target)), Path(shutil.copy(results, target))


def test_samples_without_their_results_file_are_refused(tmp_path: Path) -> None:
    samples = Path(shutil.copy(lm_eval_files(MODELS[0])[0], tmp_path))
    with pytest.raises(DatasetError, match=r"results_<time>\.json .* is not beside them"):
        read_file(samples)


def test_a_results_file_of_another_lm_eval_version_names_the_versions_read(tmp_path: Path) -> None:
    samples, results = _copy_run(MODELS[0], tmp_path)
    data = json.loads(results.read_text())
    data["lm_eval_version"] = "0.3.0"
    results.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=r"version 0\.3\.0; benchgate reads lm-eval 0\.4\.x"):
        read_file(samples)


def test_an_item_without_a_doc_id_is_refused(tmp_path: Path) -> None:
    samples, _ = _copy_run(MODELS[0], tmp_path)
    lines = samples.read_text().splitlines()
    record = json.loads(lines[4])
    del record["doc_id"]
    lines[4] = json.dumps(record)
    samples.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match="line 5: an item without a doc_id"):
        read_file(samples)


def test_samples_and_results_of_one_run_given_together_import_once(tmp_path: Path) -> None:
    report, runs = import_files(lm_eval_files(MODELS[0]), Store(str(tmp_path / "store")), "once")
    assert len(runs) == 1 and report.pair_details(TASK, MODELS[0]).n == ITEMS
