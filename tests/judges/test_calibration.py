"""`benchgate judge-check` end to end against the deterministic local judge.

The judge (judge() in tests/support/chat_servers.py) gives `Score: 4` when the answer holds the reference
and `Score: 1` otherwise, and garbles an item whose question holds JUDGE_GARBLE; `pass-judge` is the
same judge on a pass/fail scale (4 -> 1, 1 -> 0). So each item's verdict is known here, and accuracy,
kappa, Spearman's rho and the mean absolute difference are computed in the test from their definitions
(scipy.stats.spearmanr for rho). A rerun calls no judge; invalid input exits 2 before any call.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from scipy.stats import spearmanr
from typer.testing import CliRunner

from benchgate.interfaces.cli import app
from tests.conftest import run_cli
from tests.evaltasks.test_custom_tasks import ROWS, write_jsonl
from tests.support.chat_servers import JUDGE_GARBLE, ChatRequest, ChatServer, judge

CITIES = ["Paris", "Rome", "Madrid", "Berlin", "Lisbon", "Vienna", "Athens", "Oslo", "Prague", "Dublin"]
RIGHT = [True, True, False, True, False, False, True, False, True, True]  # the answer holds the reference
WIDE_LABELS = [5, 4, 2, 3, 1, 2, 4, 1, 5, 3]  # a person's scores on 1-5
PASS_LABELS = ["pass", "pass", "fail", "fail", "fail", "pass", "pass", "fail", "pass", "pass"]


def replies(request: ChatRequest) -> str:
    verdict = judge(request)
    if request.model == "pass-judge":
        return verdict.replace("Score: 1", "Score: 0").replace("Score: 4", "Score: 1")
    return verdict


@pytest.fixture
def server() -> Iterator[ChatServer]:
    with ChatServer(reply=replies) as chat_server:
        yield chat_server


def items(labels: list[Any], garble: int | None = None) -> list[dict[str, Any]]:
    return [
        {
            "question": f"What is the capital? {JUDGE_GARBLE if n == garble else ''}".strip(),
            "reference": city,
            "answer": f"It is {city}." if right else "I am not sure.",
            "label": label,
        }
        for n, (city, right, label) in enumerate(zip(CITIES, RIGHT, labels, strict=True))
    ]


def write_request(tmp_path: Path, url: str) -> Path:
    judge_model = {"provider": "openai-compatible", "base_url": url + "/v1", "judge_only": True}
    request = {
        "name": "calibrated",
        "models": [
            {"id": "cand", "provider": "builtin", "model": "reference"},
            {"id": "judge", **judge_model},
            {"id": "pass-judge", **judge_model},
        ],
        "tasks": [
            {
                "task": "capitals",
                "dataset": str(write_jsonl(tmp_path / "data.jsonl", ROWS)),
                "prompt": "{{ question }}",
                "target": "answer",
                "metrics": [
                    "exact-match",
                    {"rubric": {"judge": "judge", "rubric": "correctness", "scale": [1, 5]}},
                    {
                        "rubric": {
                            "judge": "pass-judge",
                            "rubric": "correctness",
                            "scale": [0, 1],
                            "name": "correct",
                        }
                    },
                    {"pairwise": {"judge": "judge", "baseline": "cand"}},
                ],
            }
        ],
    }
    path = tmp_path / "request.yaml"
    path.write_text(yaml.safe_dump(request))
    return path


def judge_check(args: list[str], store: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["judge-check", *args, "--store", str(store)])
    return result.exit_code, result.output


def last_json(output: str) -> dict[str, Any]:
    return json.loads(output.strip().splitlines()[-1])


def test_spearman_accuracy_and_distance_on_a_wide_scale_and_a_rerun_calls_no_judge(
    tmp_path: Path, server: ChatServer
) -> None:
    request = write_request(tmp_path, server.url)
    labels = write_jsonl(tmp_path / "labels.jsonl", items(WIDE_LABELS, garble=9))
    env = {**os.environ, "BENCHGATE_STORE": str(tmp_path / "store")}
    args = ["judge-check", str(request), "--labels", str(labels), "--metric", "correctness"]
    first = run_cli(args, env)
    assert first.returncode == 0, first.stdout + first.stderr
    result = last_json(first.stdout)
    assert len(server.requests) == 10

    human = WIDE_LABELS[:9]  # item 10 garbles the judge: a judge error, left out
    judged = [4 if right else 1 for right in RIGHT[:9]]
    assert result["n"] == 10 and result["judge_errors"] == 1
    assert (result["requests"], result["reused"]) == (10, 0)
    assert result["scale"] == [1, 5] and result["judge"] == "judge" and result["task"] == "capitals"
    expected = {
        "accuracy": sum(h == j for h, j in zip(human, judged, strict=True)) / 9,
        "spearman": spearmanr(human, judged).statistic,
        "mean_abs_diff": sum(abs(h - j) for h, j in zip(human, judged, strict=True)) / 9,
    }
    for name, value in expected.items():
        figure = result[name]
        assert figure["value"] == pytest.approx(value), name
        assert figure["ci_low"] <= figure["value"] <= figure["ci_high"], name
    assert -1 <= result["spearman"]["ci_low"] < result["spearman"]["ci_high"] <= 1
    assert "kappa" not in result and "confusion" not in result
    assert "spearman" in first.stdout and "95% interval" in first.stdout

    again = run_cli(args, env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(server.requests) == 10  # every verdict reused
    rerun = last_json(again.stdout)
    assert (rerun["requests"], rerun["reused"]) == (0, 10)
    assert {k: v for k, v in rerun.items() if k not in ("requests", "reused")} == {
        k: v for k, v in result.items() if k not in ("requests", "reused")
    }


def test_accuracy_kappa_and_confusion_on_a_pass_fail_scale_from_csv(
    tmp_path: Path, server: ChatServer
) -> None:
    request = write_request(tmp_path, server.url)
    rows = items(PASS_LABELS)
    labels = tmp_path / "labels.csv"
    with labels.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    code, output = judge_check([str(request), "--labels", str(labels), "--metric", "correct"], tmp_path / "s")
    assert code == 0, output
    result = last_json(output)

    human = [label == "pass" for label in PASS_LABELS]
    agree = sum(h == j for h, j in zip(human, RIGHT, strict=True)) / 10
    p_human, p_judge = sum(human) / 10, sum(RIGHT) / 10
    chance = p_human * p_judge + (1 - p_human) * (1 - p_judge)
    assert result["judge"] == "pass-judge" and result["judge_errors"] == 0 and result["n"] == 10
    assert result["accuracy"]["value"] == pytest.approx(agree)
    assert result["kappa"]["value"] == pytest.approx((agree - chance) / (1 - chance))
    assert result["mean_abs_diff"]["value"] == pytest.approx(1 - agree)
    assert result["confusion"] == {
        f"human_{h}_judge_{j}": sum(
            (human[i] == (h == "pass")) and (RIGHT[i] == (j == "pass")) for i in range(10)
        )
        for h in ("pass", "fail")
        for j in ("pass", "fail")
    }
    for name in ("accuracy", "kappa"):
        assert result[name]["ci_low"] <= result[name]["value"] <= result[name]["ci_high"]
    assert "spearman" not in result


@pytest.mark.parametrize(
    ("change", "args", "message"),
    [
        ("no label", ["--metric", "correctness"], "label: no such column"),
        ("no reference", ["--metric", "correctness"], "reference: no such column"),
        ("label 7", ["--metric", "correctness"], "label: row 2: 7 is outside the scale [1, 5]"),
        (
            "label good",
            ["--metric", "correctness"],
            "label: row 2: 'good' is not a whole number on the scale",
        ),
        (
            "label fail",
            ["--metric", "correctness"],
            "label: row 2: 'fail' is not a whole number on the scale",
        ),
        (None, ["--metric", "nope"], "--metric: 'nope': no such rubric metric (rubric metrics of capitals: "),
        (None, ["--metric", "win-rate"], "--metric: 'win-rate': a pairwise metric"),
        (
            None,
            [],
            "--metric: name the rubric metric to check (rubric metrics of capitals: correctness, correct)",
        ),
        (None, ["--task", "other", "--metric", "correctness"], "--task: unknown evaluation task 'other'"),
        ("unknown judge", ["--metric", "correctness"], "rubric.judge: no model 'gpt-judge'"),
    ],
)
def test_invalid_input_exits_2_naming_the_field_and_calls_nothing(
    tmp_path: Path, server: ChatServer, change: str | None, args: list[str], message: str
) -> None:
    request = write_request(tmp_path, server.url)
    rows = items(WIDE_LABELS)
    if change == "no label":
        rows = [{k: v for k, v in row.items() if k != "label"} for row in rows]
    elif change == "no reference":
        rows = [{k: v for k, v in row.items() if k != "reference"} for row in rows]
    elif change is not None and change.startswith("label "):
        rows[1]["label"] = int(change[6:]) if change == "label 7" else change[6:]
    elif change == "unknown judge":
        request.write_text(request.read_text().replace("judge: judge", "judge: gpt-judge", 1))
    labels = write_jsonl(tmp_path / "labels.jsonl", rows)
    code, output = judge_check([str(request), "--labels", str(labels), *args], tmp_path / "s")
    assert code == 2, output
    assert message in output
    assert server.requests == []
