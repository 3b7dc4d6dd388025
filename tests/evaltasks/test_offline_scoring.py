"""`benchgate score` from the command line: the official SQuAD numbers, as one JSON object on stdout."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from benchgate.interfaces.cli import app
from tests.support.test_data import DataFile, reference_scores


def test_score_squad_predictions_prints_the_official_numbers(data_file: DataFile, tmp_path: Path) -> None:
    official = reference_scores("squad_v2")["results"]["context_first5words"]
    out = tmp_path / "items.jsonl"
    result = CliRunner().invoke(
        app,
        [
            "score",
            "question-answering",
            "--dataset",
            str(data_file("squad_v2/dev-v2.0.json")),
            "--predictions",
            str(data_file("squad_v2/predictions/context_first5words.json")),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    expected = official["official_output"]
    assert abs(printed["exact-match"] - expected["exact"]) < 1e-6
    assert abs(printed["f1-score"] - expected["f1"]) < 1e-6
    for key in ("HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1"):
        assert abs(printed["details"][key] - expected[key]) < 1e-6
    assert len(out.read_text().splitlines()) == 11_873


def test_score_without_a_dataset_offline_is_a_clear_error(tmp_path: Path) -> None:
    predictions = tmp_path / "p.json"
    predictions.write_text("{}")
    result = CliRunner().invoke(app, ["score", "question-answering", "--predictions", str(predictions)])
    assert result.exit_code == 2
    assert "--dataset" in result.output


def hostile_inputs(tmp_path: Path, squad: Path) -> list[tuple[list[str], str]]:
    """(score arguments, expected message part): each is the user's to fix, so exit 2, never a crash."""
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    one = tmp_path / "one.json"
    one.write_text(json.dumps({"56ddde6b9a695914005b9628": "France"}))
    return [
        (["question-answering", "--predictions", str(empty), "--dataset", str(squad)], "no predictions"),
        (["question-answering", "--predictions", str(deep), "--dataset", str(squad)], "nested too deeply"),
        (["question-answering", "--predictions", str(one), "--dataset", str(deep)], "nested too deeply"),
        (["question-answering", "--predictions", str(one), "--dataset", str(tmp_path)], "is a directory"),
        (["question-answering", "--predictions", str(tmp_path), "--dataset", str(squad)], "is a directory"),
        (["code-generation", "--predictions", str(deep)], "nested too deeply"),
        (["text-summarization", "--predictions", str(deep), "--dataset", str(deep)], "nested too deeply"),
    ]


def test_hostile_or_empty_inputs_exit_2_with_a_message(data_file: DataFile, tmp_path: Path) -> None:
    squad = data_file("squad_v2/dev-v2.0.json")
    for arguments, message in hostile_inputs(tmp_path, squad):
        result = CliRunner().invoke(app, ["score", *arguments])
        assert result.exit_code == 2, (arguments, result.output, result.exception)
        assert message in result.output, (arguments, result.output)
