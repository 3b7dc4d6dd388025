"""Bad requests: exit code 2, a message naming the field path, no traceback, nothing written."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from benchgate.errors import RequestError
from benchgate.interfaces.cli import app
from benchgate.run.validation import parse_request
from benchgate.spec.base import field_path

VALID: dict[str, Any] = {
    "name": "valid",
    "models": [
        {"id": "ref", "provider": "builtin", "model": "reference"},
        {"id": "tuned", "provider": "openai-compatible", "base_url": "http://127.0.0.1:9/v1"},
    ],
    "tasks": [{"task": "question-answering", "limit": 5}, {"task": "code-generation", "samples": 2}],
    "gate": {
        "rules": [{"model": "tuned", "task": "question-answering", "metric": "f1-score", "at_least": 50}]
    },
}


def mutate(path: str, value: Any) -> dict[str, Any]:
    """Set (or with value=DELETE remove) the item at a dotted path such as 'models.0.id'."""
    data = copy.deepcopy(VALID)
    *parents, last = path.split(".")
    target: Any = data
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    key: Any = int(last) if last.isdigit() else last
    if value is DELETE:
        del target[key]
    else:
        target[key] = value
    return data


DELETE = object()

CASES = [
    ("unknown top-level key", mutate("modles", []), "modles", "unknown key"),
    ("unknown nested key", mutate("models.1.temprature", 0.2), "models[1].temprature", "unknown key"),
    ("unknown key in a rule", mutate("gate.rules.0.threshold", 3), "gate.rules[0].threshold", "unknown key"),
    ("wrong type", mutate("models.1.concurrency", "many"), "models[1].concurrency", "integer"),
    ("missing required field", mutate("models.1.provider", DELETE), "models[1].provider", "Field required"),
    ("unknown provider", mutate("models.1.provider", "skynet"), "models[1].provider", "openai"),
    ("missing name", mutate("name", DELETE), "name", "Field required"),
    ("no models", mutate("models", []), "models", "at least 1"),
    ("duplicate model ids", mutate("models.1.id", "ref"), "models[1].id", "duplicate model id"),
    (
        "openai-compatible without base_url",
        mutate("models.1.base_url", DELETE),
        "models[1].base_url",
        "required",
    ),
    ("base_url not a URL", mutate("models.1.base_url", "localhost:8000"), "models[1].base_url", "http"),
    ("unknown builtin model", mutate("models.0.model", "oracle"), "models[0].model", "unknown builtin model"),
    (
        "unknown evaluation task",
        mutate("tasks.0.task", "translation"),
        "tasks[0].task",
        "unknown evaluation task",
    ),
    (
        "unknown dataset",
        mutate("tasks.0.dataset", "natural-questions"),
        "tasks[0].dataset",
        "unknown dataset",
    ),
    ("zero limit", mutate("tasks.0.limit", 0), "tasks[0].limit", "greater than 0"),
    ("negative samples", mutate("tasks.1.samples", -1), "tasks[1].samples", "greater than 0"),
    ("zero concurrency", mutate("models.1.concurrency", 0), "models[1].concurrency", "greater than 0"),
    ("k beyond samples", mutate("tasks.1.k", [1, 5]), "tasks[1].k", "needs samples >= 5"),
    (
        "missing dataset file",
        mutate("tasks.0.path", "/nonexistent/dev.json"),
        "tasks[0].path",
        "file not found",
    ),
    (
        "rule names unknown model",
        mutate("gate.rules.0.model", "gpt-9"),
        "gate.rules[0].model",
        "unknown model",
    ),
    (
        "rule names unknown task",
        mutate("gate.rules.0.task", "summaries"),
        "gate.rules[0].task",
        "unknown evaluation task",
    ),
    (
        "rule names unknown metric",
        mutate("gate.rules.0.metric", "bleu"),
        "gate.rules[0].metric",
        "not reported",
    ),
    (
        "rule metric of another task",
        mutate("gate.rules.0.metric", "pass@1"),
        "gate.rules[0].metric",
        "not reported",
    ),
    ("rule with two comparisons", mutate("gate.rules.0.at_most", 90), "gate.rules[0]", "exactly one"),
    (
        "baseline without gate.baseline",
        mutate(
            "gate.rules.0",
            {
                "model": "tuned",
                "task": "question-answering",
                "metric": "f1-score",
                "no_worse_than": "baseline",
            },
        ),
        "gate.rules[0]",
        "gate.baseline is not set",
    ),
    ("unknown baseline", mutate("gate.baseline", "gpt-9"), "gate.baseline", "unknown model"),
]


def test_the_valid_request_is_valid() -> None:
    assert parse_request(VALID).models[1].base_url == "http://127.0.0.1:9/v1"


@pytest.mark.parametrize(("case", "data", "path", "message"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_invalid_request_exits_2_naming_the_field(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    data: dict,
    path: str,
    message: str,
    command: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BENCHGATE_STORE", str(tmp_path / "store"))
    request = tmp_path / "request.yaml"
    request.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(app, [command, str(request)])
    assert result.exit_code == 2, result.output
    problem_lines = [line for line in result.output.splitlines() if line.strip().startswith(f"- {path}:")]
    assert problem_lines, f"no line names {path!r}:\n{result.output}"
    assert any(message in line for line in problem_lines), result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "store").exists(), "nothing may be written for an invalid request"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("broken.yaml", "name: [unclosed", "invalid YAML"),
        ("broken.json", '{"name": "x",}', "invalid JSON at line 1"),
        ("list.yaml", "- just\n- a list\n", "expected a mapping"),
    ],
)
def test_unparseable_files_exit_2(tmp_path: Path, name: str, content: str, message: str) -> None:
    request = tmp_path / name
    request.write_text(content)
    result = CliRunner().invoke(app, ["validate", str(request)])
    assert result.exit_code == 2 and message in result.output, result.output


def test_unreadable_file_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2 and "cannot read" in result.output


def test_every_problem_is_listed_at_once() -> None:
    data = mutate("models.1.id", "ref")
    data["tasks"][0]["task"] = "translation"
    with pytest.raises(Exception) as raised:
        parse_request(data)
    assert "models[1].id" in str(raised.value) and "tasks[0].task" in str(raised.value)


def test_relative_dataset_paths_resolve_against_the_request_file(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "dev.json").write_text(json.dumps({"version": "v2.0", "data": []}))
    request = tmp_path / "request.yaml"
    request.write_text(yaml.safe_dump(mutate("tasks.0.path", "data/dev.json")))
    result = CliRunner().invoke(app, ["validate", str(request)])
    assert result.exit_code == 0, result.output


def test_field_path_formatting() -> None:
    assert field_path(("models", 2, "base_url")) == "models[2].base_url"
    assert field_path(()) == "(top level)"


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:9/v1?api-version=1",
        "http://127.0.0.1:9/v1?",
        "http://127.0.0.1:9/v1#frag",
        "http://user:pass@127.0.0.1:9/v1",
        "http://@127.0.0.1:9/v1",
        "http://127.0.0.1:99999/v1",
        "file:///etc/passwd",
    ],
)
def test_a_base_url_is_scheme_host_port_and_path_only(base_url: str) -> None:
    """Providers append their own path: a query, a fragment or credentials would reshape the request."""
    problems = problems_of(mutate("models.1.base_url", base_url))
    assert [p for p in problems if p.startswith("models[1].base_url: must be an http(s) URL")], problems


@pytest.mark.parametrize(
    ("provider", "key"),
    [
        ("openai-compatible", "model"),
        ("openai-compatible", "messages"),
        ("openai-compatible", "stream"),
        ("anthropic", "system"),
        ("gemini", "contents"),
    ],
)
def test_params_may_not_set_what_the_provider_builds(provider: str, key: str) -> None:
    data = mutate("models.1.params", {key: "x", "temperature": 0})
    data["models"][1]["provider"] = provider
    [problem] = problems_of(data)
    assert problem.startswith(f"models[1].params.{key}: set by the {provider} provider itself"), problem
    assert key in problem.partition("(reserved: ")[2]


def problems_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(RequestError) as caught:
        parse_request(data)
    return caught.value.problems
