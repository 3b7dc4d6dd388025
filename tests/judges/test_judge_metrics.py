"""Judge metrics: strict verdict parsing, and request problems naming the field (exit 2, nothing called)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from benchgate.interfaces.cli import app
from benchgate.spec.judge import PairwiseMetric, RubricMetric
from tests.evaltasks.test_custom_tasks import ROWS, write_jsonl

CORRECTNESS = {"judge": "judge", "rubric": "correctness", "scale": [1, 5]}


@pytest.mark.parametrize(
    ("verdict", "expected"),
    [
        ("The answer matches.\nScore: 5", 100.0),
        ("Score: 1", 0.0),
        ("reasoning\n**Score: 4**\n", 75.0),
        ("score:3", 50.0),
    ],
)
def test_a_rubric_verdict_is_its_last_line_as_a_percent_of_the_scale(verdict: str, expected: float) -> None:
    assert RubricMetric(**CORRECTNESS).parse(verdict) == expected


@pytest.mark.parametrize(
    "verdict", ["Score: 6", "Score: 0", "Score: 4\nThanks!", "I'd say 4", "", "Score: 4.5", "Score: four"]
)
def test_an_unreadable_rubric_verdict_is_an_error_never_a_zero(verdict: str) -> None:
    with pytest.raises(ValueError):
        RubricMetric(**CORRECTNESS).parse(verdict)


def test_a_pairwise_verdict_names_a_winner_or_a_tie() -> None:
    assert [PairwiseMetric.parse(v) for v in ("Winner: A", "x\nwinner: b", "Winner: tie")] == [
        "a",
        "b",
        "tie",
    ]
    with pytest.raises(ValueError):
        PairwiseMetric.parse("A is better")


def validate(
    tmp_path: Path, metrics: list[Any], models: list[dict[str, Any]] | None = None, **task: Any
) -> str:
    write_jsonl(tmp_path / "data.jsonl", ROWS)
    request = {
        "name": "judged",
        "models": models
        or [
            {"id": "cand", "provider": "builtin", "model": "reference"},
            {
                "id": "judge",
                "provider": "openai-compatible",
                "base_url": "http://127.0.0.1:9/v1",
                "judge_only": True,
            },
        ],
        "tasks": [
            {
                "task": "t",
                "dataset": "data.jsonl",
                "prompt": "{{ question }}",
                "target": "answer",
                "metrics": metrics,
                **task,
            }
        ],
    }
    (tmp_path / "request.yaml").write_text(yaml.safe_dump(request))
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "request.yaml")])
    return f"{result.exit_code}: {result.output}"


def test_a_request_with_judge_metrics_validates(tmp_path: Path) -> None:
    metrics = [{"rubric": CORRECTNESS}, {"pairwise": {"judge": "judge", "baseline": "cand"}}]
    assert validate(tmp_path, metrics).startswith("0: "), validate(tmp_path, metrics)


@pytest.mark.parametrize(
    ("metric", "message"),
    [
        (
            {"rubric": {**CORRECTNESS, "rubric": "Grade {{ answr }} vs {{ reference }}", "name": "mine"}},
            "tasks[0].metrics[0].rubric.rubric: unknown variable 'answr' (judge variables: answer, reference",
        ),
        (
            {"rubric": {"judge": "judge", "rubric": "correctness"}},
            "tasks[0].metrics[0].rubric.scale: the scale's bounds",
        ),
        (
            {"rubric": {**CORRECTNESS, "scale": [5, 1]}},
            "tasks[0].metrics[0].rubric.scale: the scale's bounds",
        ),
        (
            {"rubric": {**CORRECTNESS, "rubric": "terse"}},
            "tasks[0].metrics[0].rubric.rubric: unknown rubric 'terse'",
        ),
        (
            {"rubric": {**CORRECTNESS, "judge": "gpt-judge"}},
            "tasks[0].metrics[0].rubric.judge: no model 'gpt-judge'",
        ),
        (
            {"rubric": {**CORRECTNESS, "temperature": 0}},
            "tasks[0].metrics[0].rubric.temperature: unknown key",
        ),
        (
            {"pairwise": {"judge": "judge"}},
            "tasks[0].metrics[0].pairwise.baseline: pairwise needs the baseline",
        ),
        (
            {"pairwise": {"judge": "judge", "baseline": "judge"}},
            "tasks[0].metrics[0].pairwise.baseline: no evaluated",
        ),
        (
            {"pairwise": {"judge": "judge", "baseline": "cand", "prompt": "{{ answer_a }}"}},
            "must show both answers",
        ),
        ({"rubric": {**CORRECTNESS, "rubric": "faithfulness"}}, "unknown variable 'context'"),
    ],
)
def test_judge_metric_problems_name_the_field(tmp_path: Path, metric: dict[str, Any], message: str) -> None:
    output = validate(tmp_path, [metric])
    assert output.startswith("2: ") and message in output, output


def test_a_rubric_reading_the_reference_needs_a_target(tmp_path: Path) -> None:
    output = validate(tmp_path, [{"rubric": CORRECTNESS}], target=None)
    assert output.startswith("2: ") and "tasks[0].target: required by correctness" in output, output
