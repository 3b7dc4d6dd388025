"""`benchgate import` end to end: the recorded lm-eval and Inspect runs stored as one benchmark, gated by
`benchgate gate` with every rule kind, and bad input refused with exit 2 before anything is written."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import cli_env, run_cli
from tests.imports.recorded import (
    FIXTURES,
    INSPECT_MODEL,
    ITEMS,
    MODELS,
    inspect_eval_log,
    inspect_eval_logs,
    inspect_json_log,
    lm_eval_files,
)

BASELINE, CANDIDATE = (INSPECT_MODEL.format(m) for m in MODELS)
RULES = f"""
baseline: {BASELINE}
rules:
  # the candidate's known regression, on Inspect's binary and continuous scorers and on lm-eval's metric
  - {{model: {CANDIDATE}, task: arithmetic, metric: match, no_worse_than: baseline, confidence: 0.95}}
  - {{model: {CANDIDATE}, task: arithmetic, metric: f1, no_worse_than: baseline, confidence: 0.95}}
  - {{model: {MODELS[1]}, task: arithmetic_local, metric: exact_match, no_worse_than: {MODELS[0]},
     confidence: 0.95}}
  - {{model: {BASELINE}, task: arithmetic, metric: match, better_than: {CANDIDATE}, confidence: 0.95}}
  - {{model: {MODELS[0]}, task: arithmetic_local, metric: exact_match, at_least: 0.85}}
  - {{model: {CANDIDATE}, task: arithmetic, metric: error_rate, at_most: 0.0}}
"""
EXPECTED = [("fail", "mcnemar-exact"), ("fail", "paired-bootstrap"), ("fail", "mcnemar-exact")]
EXPECTED += [("pass", "mcnemar-exact"), ("pass", "point"), ("pass", "point")]


def _import(store: Path, *files: Path, name: str = "imported") -> tuple[str, Path]:
    result = run_cli(["import", *map(str, files), "--name", name, "--store", str(store)], dict(os.environ))
    assert result.returncode == 0, result.stderr
    benchmark_id = re.search(r"^benchmark (bmk-\w+)$", result.stdout, re.M)[1]
    report = Path(re.search(r"^report (.+)$", result.stdout, re.M)[1])
    return benchmark_id, report


def _refused(store: Path, *files: Path) -> str:
    result = run_cli(["import", *map(str, files), "--store", str(store)], dict(os.environ))
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert not store.exists() or not any(p.is_file() for p in store.rglob("*"))  # nothing written
    return result.stderr


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    """Both tools' runs of both models, imported once: (store, benchmark id, report.json)."""
    store = tmp_path_factory.mktemp("imported") / "store"
    files = [lm_eval_files(m)[0] for m in MODELS] + inspect_eval_logs()
    benchmark_id, report = _import(store, *files, name="tools")
    return store, benchmark_id, report


def test_import_stores_scores_report_and_history_as_a_run_does(imported: tuple[Path, str, Path]) -> None:
    store, benchmark_id, report_path = imported
    assert report_path == store / "reports" / benchmark_id / "report.json"
    report = json.loads(report_path.read_text())
    assert (report["name"], report["status"]) == ("tools", "completed")
    assert (store / "reports" / benchmark_id / "report.md").is_file()
    assert (store / "history" / f"{benchmark_id}.parquet").is_file()
    for task, models in (("arithmetic_local", MODELS), ("arithmetic", (BASELINE, CANDIDATE))):
        for model in models:
            partition = model.replace("/", "%2F")
            assert (
                store / "scores" / f"model={partition}" / f"task={task}" / f"{benchmark_id}.parquet"
            ).is_file()
            details = report["details"][task][model]
            assert (details["n"], details["n_items"], details["n_errors"]) == (ITEMS, ITEMS, 0)
    # the report's values are the tools' own aggregates (rounded to the report's 6 digits)
    for source in report["imported_from"]:
        row = next(r for r in report["report"][source["task"]]["results"] if r["model"] == source["model"])
        assert {m: row[m] for m in source["reported"]} == pytest.approx(source["reported"], abs=1e-6)
    kinds = report["details"]["arithmetic"][CANDIDATE]["per_item_kind"]
    assert kinds == {"match": "binary", "f1": "continuous"}


def test_gate_applies_every_rule_kind_to_imported_runs(
    imported: tuple[Path, str, Path], prefect_server, tmp_path: Path
) -> None:
    store, _, report = imported
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    out = tmp_path / "out"
    result = run_cli(
        ["gate", str(report), "--rules", str(rules), "--out", str(out)], cli_env(prefect_server, store)
    )
    assert result.returncode == 1, result.stderr  # the gate failed: a regression, not an error
    verdicts = json.loads((out / "gate.json").read_text())["rules"]
    assert [(v["verdict"], v["test"]) for v in verdicts] == EXPECTED
    assert all(v["n"] == ITEMS for v in verdicts[:4])
    assert verdicts[0]["p_value"] < 0.05 and verdicts[0]["difference"] < 0


def test_a_json_and_an_eval_log_pair_on_the_items_they_share(tmp_path: Path) -> None:
    _, report_path = _import(tmp_path / "store", inspect_json_log(), inspect_eval_log(MODELS[1]))
    details = json.loads(report_path.read_text())["details"]["arithmetic"]
    assert (details[BASELINE]["n"], details[CANDIDATE]["n"]) == (10, ITEMS)


def test_a_file_of_an_unknown_format_names_the_formats_read(tmp_path: Path) -> None:
    binary = tmp_path / "scores.parquet"
    binary.write_bytes(b"PAR1\xff\xfe")
    for unknown in (FIXTURES / "arithmetic.jsonl", binary):  # JSON lines of no tool, and no text at all
        error = _refused(tmp_path / "store", lm_eval_files(MODELS[0])[0], unknown)
        assert f"{unknown.name}: not a log benchgate can import" in error
        assert (
            "lm-evaluation-harness 0.4.x" in error and "Inspect AI eval logs, log format version 2" in error
        )


def test_runs_with_no_items_in_common_are_refused(tmp_path: Path) -> None:
    samples, _ = (Path(shutil.copy(p, tmp_path)) for p in lm_eval_files(MODELS[1]))  # results beside
    records = [json.loads(line) for line in samples.read_text().splitlines()]
    samples.write_text("".join(json.dumps({**r, "doc_id": r["doc_id"] + 100}) + "\n" for r in records))
    error = _refused(tmp_path / "store", lm_eval_files(MODELS[0])[0], samples)
    assert "baseline-model" in error and "candidate-model" in error and "have no items in common" in error


def test_items_without_ids_are_refused(tmp_path: Path) -> None:
    data = json.loads(inspect_json_log().read_text())
    del data["samples"][0]["id"]
    log = tmp_path / "no-ids.json"
    log.write_text(json.dumps(data))
    assert "a sample without an id" in _refused(tmp_path / "store", log)


def test_one_model_and_task_in_two_files_is_refused(tmp_path: Path) -> None:
    error = _refused(tmp_path / "store", inspect_eval_log(MODELS[0]), inspect_json_log())
    assert f"{BASELINE} on arithmetic is in two files" in error
