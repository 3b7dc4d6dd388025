"""The quickstart that `make demo` runs: offline, built-in models, all three built-in tasks, gate passes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rouge_score import rouge_scorer

from benchgate.providers.builtin import lead_3
from tests.conftest import REPO_ROOT, cli_env, run_cli

pytestmark = pytest.mark.slow


def test_quickstart_runs_and_the_reference_model_calibrates(tmp_path: Path, prefect_server) -> None:
    result = run_cli(
        ["run", "examples/quickstart.yaml", "--out", str(tmp_path / "out")],
        cli_env(prefect_server, tmp_path / "store"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "gate: pass" in result.stdout
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    rows = {
        (task, row["model"]): row for task, section in report["report"].items() for row in section["results"]
    }
    assert rows[("text-summarization", "reference")] == {
        "model": "reference",
        "rouge-1": 1.0,
        "rouge-2": 1.0,
        "rouge-l": 1.0,
    }
    assert rows[("question-answering", "reference")] == {
        "model": "reference",
        "exact-match": 100.0,
        "f1-score": 100.0,
    }
    assert rows[("code-generation", "reference")] == {"model": "reference", "pass@1": 100.0}
    assert rows[("code-generation", "baseline")]["pass@1"] == 0.0

    articles = [json.loads(line) for line in (REPO_ROOT / "benchgate/data/cnn_dailymail_sample.jsonl").open()]
    scorer = rouge_scorer.RougeScorer(["rougeLsum"], use_stemmer=True)
    lead3 = sum(
        scorer.score(a["highlights"], lead_3(a["article"]))["rougeLsum"].fmeasure for a in articles
    ) / len(articles)
    assert rows[("text-summarization", "baseline")]["rouge-l"] == pytest.approx(lead3, abs=1e-6)
    assert 0 < rows[("question-answering", "baseline")]["f1-score"] < 100
    assert {p.name for p in (tmp_path / "out").iterdir()} >= {
        "report.json",
        "report.md",
        "report.html",
        "junit.xml",
        "gate.json",
    }
