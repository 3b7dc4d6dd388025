"""Inspect AI eval logs, as Inspect 0.3.285 wrote them (.eval and .json), read into per-item scores.

The reference is the log's own results section: the mean of the imported items must be what Inspect
reported for each scorer (accuracy for match, mean for f1).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from benchgate.errors import DatasetError
from benchgate.imports import read_file
from benchgate.imports.inspect_ai import ZIP_ZSTANDARD, _member
from tests.imports.recorded import (
    BASELINE_WRONG,
    CANDIDATE_VERBOSE,
    CANDIDATE_WRONG,
    INSPECT_MODEL,
    ITEMS,
    MODELS,
    inspect_eval_logs,
    inspect_json_log,
)

REPORTED = {"match": "accuracy", "f1": "mean"}  # each scorer's mean-of-items metric in the results


def _reported(results: dict) -> dict[str, float]:
    return {s["name"]: s["metrics"][REPORTED[s["name"]]]["value"] for s in results["scores"]}


def _header(log: Path) -> dict:
    with zipfile.ZipFile(log) as archive:
        return _member(log, archive, "header.json")


def test_the_recorded_eval_logs_are_zstd_archives_which_pythons_zipfile_cannot_read() -> None:
    for log in inspect_eval_logs():
        with zipfile.ZipFile(log) as archive:
            assert {info.compress_type for info in archive.infolist()} == {ZIP_ZSTANDARD}


@pytest.mark.parametrize("log", inspect_eval_logs(), ids=lambda path: path.name)
def test_eval_log_items_and_their_means_are_what_inspect_reported(log: Path) -> None:
    (run,) = read_file(log)
    header = _header(log)
    assert run.model == header["eval"]["model"] and run.model in {INSPECT_MODEL.format(m) for m in MODELS}
    assert (run.task, run.tool) == ("arithmetic", "inspect-ai 0.3.285")
    assert list(run.scores.columns) == ["example_id", "match", "f1"]
    assert list(run.scores["example_id"]) == [f"arith-{i:02d}" for i in range(ITEMS)]
    reported = _reported(header["results"])
    assert {m: run.scores[m].mean() for m in REPORTED} == pytest.approx(reported)
    assert run.reported == pytest.approx(reported)


def test_correct_and_incorrect_become_1_and_0_and_numbers_stay() -> None:
    runs = {run.model: run.scores for log in inspect_eval_logs() for run in read_file(log)}
    baseline, candidate = (runs[INSPECT_MODEL.format(m)] for m in MODELS)
    assert set(baseline.index[baseline["match"] == 0]) == BASELINE_WRONG
    assert set(candidate.index[candidate["match"] == 0]) == CANDIDATE_WRONG  # verbose answers still match
    verbose = candidate.loc[sorted(CANDIDATE_VERBOSE), "f1"]
    assert ((verbose > 0) & (verbose < 1)).all()  # token F1 of "The answer is 13." against "13"
    assert set(baseline["match"]) == {0.0, 1.0}


def test_an_eval_log_with_deflated_members_reads_the_same(tmp_path: Path) -> None:
    """Inspect versions before zstd wrote the same members deflated."""
    log, deflated = inspect_eval_logs()[0], tmp_path / "deflated.eval"
    with zipfile.ZipFile(log) as source, zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as target:
        for name in source.namelist():
            target.writestr(name, json.dumps(_member(log, source, name)))
    (original,), (rewritten,) = read_file(log), read_file(deflated)
    assert rewritten.scores.equals(original.scores) and rewritten.reported == original.reported


def test_the_json_log_reads_like_the_eval_log_of_the_same_model() -> None:
    log = inspect_json_log()
    (run,) = read_file(log)
    data = json.loads(log.read_text())
    assert run.model == INSPECT_MODEL.format(MODELS[0]) and len(run.scores) == 10
    assert {m: run.scores[m].mean() for m in REPORTED} == pytest.approx(_reported(data["results"]))
    eval_runs = [r for path in inspect_eval_logs() for r in read_file(path) if r.model == run.model]
    assert run.scores.equals(eval_runs[0].scores.head(10))


def _json_log(tmp_path: Path, change) -> Path:
    data = json.loads(inspect_json_log().read_text())
    change(data)
    path = tmp_path / "changed.json"
    path.write_text(json.dumps(data))
    return path


def test_another_log_format_version_names_the_version_read(tmp_path: Path) -> None:
    path = _json_log(tmp_path, lambda data: data.update(version=1))
    with pytest.raises(DatasetError, match=r"version 1; benchgate reads version 2 \(Inspect 0\.3\.x\)"):
        read_file(path)


def test_an_eval_that_did_not_finish_is_refused(tmp_path: Path) -> None:
    path = _json_log(tmp_path, lambda data: data.update(status="error"))
    with pytest.raises(DatasetError, match="status 'error'; only successful evals"):
        read_file(path)
    # What a killed eval leaves: the members written so far, without the header written at the end.
    log, unfinished = inspect_eval_logs()[0], tmp_path / "unfinished.eval"
    with zipfile.ZipFile(log) as source, zipfile.ZipFile(unfinished, "w") as target:
        for name in source.namelist():
            if name != "header.json":
                target.writestr(name, json.dumps(_member(log, source, name)))
    with pytest.raises(DatasetError, match="an unfinished Inspect log"):
        read_file(unfinished)


def test_a_sample_without_an_id_is_refused(tmp_path: Path) -> None:
    path = _json_log(tmp_path, lambda data: data["samples"][3].pop("id"))
    with pytest.raises(DatasetError, match="a sample without an id"):
        read_file(path)


def test_a_scorer_without_one_number_per_item_is_left_out_and_said(tmp_path: Path) -> None:
    path = _json_log(tmp_path, lambda data: data["samples"][2]["scores"]["f1"].update(value={"a": 1}))
    (run,) = read_file(path)
    assert list(run.scores.columns) == ["example_id", "match"]
    assert run.skipped == ["f1: the value for item arith-02 is not one number"]
