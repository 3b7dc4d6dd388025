"""Problem messages name the setting, the row and the kind of problem, never a value from the data:
through the HTTP API they reach callers in 422 responses, and a dataset may be a file of the server."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from benchgate.evaltasks import make_task
from benchgate.interfaces.cli import app
from benchgate.spec.request import TaskSpec

SENTINEL = "s3cr3t-r0w-t3xt"
GOOD = {"id": "ok", "question": "q", "answer": "Paris", "options": ["Paris", "Rome"], "ticket": {"a": 1}}


def row(**fields: Any) -> str:
    return json.dumps({**GOOD, "id": f"id-{len(fields)}", **fields})


# (task settings, lines of the dataset): each gives at least one problem, with SENTINEL in the data
BATTERY: dict[str, tuple[dict[str, Any], list[str]]] = {
    "choices not a list": (
        {"choices": "options", "metrics": ["choice-accuracy"]},
        [row(options=SENTINEL)],
    ),
    "target not a choice": ({"choices": "options", "metrics": ["choice-accuracy"]}, [row(answer=SENTINEL)]),
    "reference not a number": ({"metrics": ["numeric-match"]}, [row(answer=SENTINEL)]),
    "reference not JSON": ({"metrics": ["json-match"]}, [row(answer=SENTINEL)]),
    "key from the data": ({"prompt": "{{ ticket[question] }}"}, [row(question=SENTINEL)]),
    "index from the data": ({"prompt": "{{ options[question] }}"}, [row(question=SENTINEL)]),
    "attribute from the data": ({"prompt": "{{ question|attr(answer) }}"}, [row(answer=SENTINEL)]),
    "unsafe attribute from the data": (
        {"prompt": "{{ question|attr(answer) }}"},
        [row(answer="__class__" + SENTINEL)],
    ),
    "conversion error": ({"prompt": "{{ question|int(strict) }}"}, [row(question=SENTINEL)]),
    "method error": ({"prompt": "{{ question.index(answer) }}"}, [row(answer=SENTINEL)]),
    "target template error": ({"target": "{{ answer.split()[5] }}"}, [row(answer=SENTINEL)]),
    "type error": ({"prompt": "{{ question + ticket }}"}, [row(question=SENTINEL)]),
    "missing target": ({}, [json.dumps({"id": "x", "question": SENTINEL})]),
    "empty target": ({}, [row(answer="", question=SENTINEL)]),
    "no tests": ({"tests": "answer", "metrics": ["pass@k"]}, [row(answer="", question=SENTINEL)]),
    "broken JSON line": ({}, [row(), '{"question": "' + SENTINEL]),
    "not an object": ({}, [row(), json.dumps(SENTINEL)]),
}


def cli_validate(tmp_path: Path, task: dict[str, Any]) -> str:
    request = {
        "name": "echo",
        "models": [{"id": "ref", "provider": "builtin", "model": "reference"}],
        "tasks": [task],
    }
    (tmp_path / "request.yaml").write_text(yaml.safe_dump(request))
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "request.yaml")])
    assert result.exit_code == 2, result.output
    return result.output


@pytest.mark.parametrize(("settings", "lines"), list(BATTERY.values()), ids=list(BATTERY))
def test_no_problem_message_echoes_a_value_of_the_data(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, settings: dict[str, Any], lines: list[str]
) -> None:
    (tmp_path / "data.jsonl").write_text("\n".join(lines) + "\n")
    task = {
        "task": "echo",
        "dataset": str(tmp_path / "data.jsonl"),
        "prompt": "{{ question }}",
        "target": "answer",
        "metrics": ["exact-match"],
        **settings,
    }
    messages = [cli_validate(tmp_path, task)]
    with caplog.at_level(logging.WARNING):
        examples = list(make_task(TaskSpec(**task)).load().examples)
    problems = [e.fields["problem"] for e in examples if "problem" in e.fields]
    assert problems, "the battery's row must be a problem"
    messages += problems + [record.getMessage() for record in caplog.records]
    for message in messages:
        assert SENTINEL not in message, message
