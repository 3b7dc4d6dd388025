"""`epochs`: every item answered N times, its score the mean over epochs, intervals over items (clustered)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchgate.run.evaluation import ExamplesInfo, GenerationStats, score_shard, summarize
from benchgate.spec.request import ModelSpec
from scorers.stats import bootstrap_ci
from tests.evaltasks.test_custom_tasks import ROWS, custom, validate, write_jsonl


def rows(examples: list, answers: dict[str, list[str]]) -> list[dict]:
    return [
        {"example_id": e.example_id, "sample_index": i, "output": answer, "error": None}
        for e in examples
        for i, answer in enumerate(answers[e.example_id])
    ]


def test_each_item_scores_the_mean_over_its_epochs_and_intervals_resample_items(tmp_path: Path) -> None:
    task = custom(write_jsonl(tmp_path / "d.jsonl", ROWS), id_field="id", epochs=4, metrics=["exact-match"])
    assert task.spec.generations_per_item == 4
    examples = list(task.load().examples)
    answers = {
        "q1": ["Paris", "Paris", "Paris", "Lyon"],
        "q2": ["Rome", "Milan", "Milan", "Milan"],
        "q3": ["Madrid"] * 4,
    }
    scores = score_shard(task, examples, rows(examples, answers))
    per_item = scores.set_index("example_id")["exact-match"].to_dict()
    assert per_item == {"q1": 75.0, "q2": 25.0, "q3": 100.0}
    info = ExamplesInfo("d", "d.jsonl", "r", 3, 1)
    stats = GenerationStats()
    result = summarize(task, ModelSpec(id="m", provider="builtin"), info, scores, stats.as_dict(), 0.05)
    metric = result.metrics["exact-match"]
    assert metric["n"] == 3  # items, not the 12 answers
    assert (metric["ci_low"], metric["ci_high"]) == bootstrap_ci(np.array([75.0, 25.0, 100.0]))
    assert metric["value"] == pytest.approx(200 / 3)


def test_an_item_with_one_failed_epoch_is_an_errored_item(tmp_path: Path) -> None:
    task = custom(write_jsonl(tmp_path / "d.jsonl", ROWS), id_field="id", epochs=2)
    examples = list(task.load().examples)
    generated = rows(examples, {"q1": ["Paris"] * 2, "q2": ["Rome"] * 2, "q3": ["Madrid"] * 2})
    generated[-1]["error"] = "timeout"
    assert list(score_shard(task, examples, generated)["example_id"]) == ["q1", "q2"]


@pytest.mark.parametrize(
    ("request_task", "message"),
    [
        (
            {"epochs": 3, "metrics": ["pass@k"], "tests": "answer"},
            "tasks[0].epochs: pass@1 cannot average over epochs",
        ),
        ({"epochs": 0}, "tasks[0].epochs: Input should be greater than 0"),
    ],
)
def test_epochs_problems_name_the_field(tmp_path: Path, request_task: dict, message: str) -> None:
    code, output = validate(tmp_path, request_task)
    assert code == 2 and message in output, output


def test_epochs_with_a_model_at_temperature_zero_is_refused(tmp_path: Path) -> None:
    import yaml
    from typer.testing import CliRunner

    from benchgate.interfaces.cli import app

    write_jsonl(tmp_path / "data.jsonl", ROWS)
    request = {
        "name": "epochs",
        "models": [
            {
                "id": "m",
                "provider": "openai-compatible",
                "base_url": "http://127.0.0.1:9/v1",
                "params": {"temperature": 0},
            }
        ],
        "tasks": [
            {
                "task": "t",
                "dataset": "data.jsonl",
                "prompt": "{{ question }}",
                "target": "answer",
                "epochs": 2,
                "metrics": ["exact-match"],
            }
        ],
    }
    (tmp_path / "request.yaml").write_text(yaml.safe_dump(request))
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "request.yaml")])
    assert result.exit_code == 2 and "models[0].params.temperature: epochs repeat" in result.output, (
        result.output
    )
