"""Request and rules files are decoded strictly: repeated keys and hostile nesting are exit-2 errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchgate.errors import RequestError
from benchgate.spec.files import MAX_DEPTH, read_structured_file


def problems_of(path: Path) -> list[str]:
    with pytest.raises(RequestError) as caught:
        read_structured_file(path)
    return caught.value.problems


def test_a_repeated_yaml_key_is_an_error_naming_the_key_and_line(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    line = "  - {model: m, task: t, metric: f1-score, at_least: 85, at_least: 60}"
    rules.write_text(f"rules:\n{line}\n")
    column = line.rindex("at_least") + 1
    assert problems_of(rules) == [
        f"(file): invalid YAML: duplicate key 'at_least' at line 2, column {column}"
    ]


def test_a_second_gate_section_does_not_silently_replace_the_first(tmp_path: Path) -> None:
    request = tmp_path / "request.yaml"
    request.write_text("name: x\ngate: {baseline: a}\nmodels: []\ngate: {baseline: b}\n")
    assert problems_of(request) == ["(file): invalid YAML: duplicate key 'gate' at line 4, column 1"]


def test_a_repeated_json_key_is_an_error(tmp_path: Path) -> None:
    request = tmp_path / "request.json"
    request.write_text('{"name": "x", "tasks": [], "name": "y"}')
    assert problems_of(request) == ["(file): invalid JSON: duplicate key 'name'"]


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_nesting_beyond_the_parser_is_an_error_not_a_recursion_crash(tmp_path: Path, suffix: str) -> None:
    deep = tmp_path / f"deep{suffix}"
    deep.write_text("[" * 50_000 + "]" * 50_000)
    assert problems_of(deep) == [f"(file): nested more than {MAX_DEPTH} levels deep"]


def test_nesting_just_beyond_the_limit_is_refused_and_at_the_limit_accepted(tmp_path: Path) -> None:
    at_limit = tmp_path / "ok.json"
    at_limit.write_text("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    assert read_structured_file(at_limit) is not None
    beyond = tmp_path / "deep.json"
    beyond.write_text("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    assert problems_of(beyond) == [f"(file): nested more than {MAX_DEPTH} levels deep"]
