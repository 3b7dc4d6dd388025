"""Custom-task templates and data through the real HTTP API: a template bomb is a fast 422 naming the
field (never a 500 or a held thread), and no 422 message repeats a value of the dataset."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.evaltasks.test_template_limits import BOMBS
from tests.interfaces.server import ApiServer
from tests.support.prefect_server import PrefectServer

pytestmark = pytest.mark.slow

SENTINEL = "s3cr3t-api-r0w"


@pytest.fixture(scope="module")
def api(prefect_server: PrefectServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    home = tmp_path_factory.mktemp("api-templates")
    (home / "store").mkdir()
    server = ApiServer(prefect_server, home / "store", home / "api.log")
    try:
        yield server
    finally:
        server.stop()


def submit(api: ApiServer, task: dict[str, Any], rows: list[dict[str, Any]]) -> tuple[int, list[str]]:
    """POST a custom-task request over `rows` (written in the store, a dataset root of the default policy)."""
    store = Path(api.env["BENCHGATE_STORE"])
    (store / "data.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    request = {
        "name": "templates",
        "models": [{"id": "ref", "provider": "builtin", "model": "reference"}],
        "tasks": [
            {
                "task": "capitals",
                "dataset": str(store / "data.jsonl"),
                "prompt": "{{ question }}",
                "target": "answer",
                "metrics": ["exact-match"],
                **task,
            }
        ],
    }
    with api.client() as client:
        response = client.post("/v1/benchmarks", json=request)
    return response.status_code, response.json().get("problems", [])


ROWS = [{"id": "q1", "question": "Capital of France?", "answer": "Paris", "options": ["Paris", "Rome"]}]


@pytest.mark.parametrize(
    "bomb", ["nested loops", "string repetition", "recursive macro", "doubling by ~", "source nested deeply"]
)
def test_a_template_bomb_is_a_fast_422_naming_the_field(api: ApiServer, bomb: str) -> None:
    started = time.monotonic()
    status, problems = submit(api, {"prompt": BOMBS[bomb]}, ROWS)
    assert time.monotonic() - started < 5  # a guard against a held thread, not a benchmark
    assert status == 422, problems
    assert [p for p in problems if p.startswith("tasks[0].prompt: template exceeds the rendering limit (")]
    with api.client() as client:  # the server is still answering
        assert client.get("/v1/health").status_code == 200


@pytest.mark.parametrize(
    ("task", "row"),
    [
        ({"choices": "options", "metrics": ["choice-accuracy"]}, {"options": SENTINEL}),
        ({"choices": "options", "metrics": ["choice-accuracy"]}, {"answer": SENTINEL}),
        ({"metrics": ["numeric-match"]}, {"answer": SENTINEL}),
        ({"prompt": "{{ options[question] }}"}, {"question": SENTINEL}),
        ({"prompt": "{{ question|int(strict) }}"}, {"question": SENTINEL}),
    ],
)
def test_a_422_never_repeats_a_value_of_the_data(
    api: ApiServer, task: dict[str, Any], row: dict[str, Any]
) -> None:
    status, problems = submit(api, task, [{**ROWS[0], **row}])
    assert status == 422 and problems
    assert not [p for p in problems if SENTINEL in p], problems


def test_a_base_url_with_a_query_is_a_422(api: ApiServer) -> None:
    request = {
        "name": "shape",
        "models": [{"id": "m", "provider": "openai-compatible", "base_url": "http://127.0.0.1:9/v1?x=1"}],
        "tasks": [{"task": "question-answering", "limit": 1}],
    }
    with api.client() as client:
        response = client.post("/v1/benchmarks", json=request)
    assert response.status_code == 422
    assert [p for p in response.json()["problems"] if p.startswith("models[0].base_url: must be an http(s)")]
