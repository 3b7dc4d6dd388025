"""Custom evaluation tasks end to end through `benchgate run`: the shipped example with the builtin
`reference` model (every metric at its maximum), and a real OpenAI-compatible server whose replies
are known, so every metric is recomputed here by hand. Also: a built-in task with the hub offline.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, cli_env, run_cli
from tests.support.chat_servers import ChatRequest, ChatServer

pytestmark = pytest.mark.slow

EXAMPLE = REPO_ROOT / "examples" / "custom"
SUPPORT = {
    row["question"]: row for row in map(json.loads, (EXAMPLE / "support.jsonl").read_text().splitlines())
}
N_ARITHMETIC = 104  # more than the 100 rows validation reads, so the last, broken row shows only in the run


def test_the_shipped_example_scores_the_reference_model_at_the_maximum(
    tmp_path: Path, prefect_server
) -> None:
    out = tmp_path / "out"
    result = run_cli(
        ["run", str(EXAMPLE / "request.yaml"), "--out", str(out)], cli_env(prefect_server, tmp_path / "store")
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["report"] == {
        "support-replies": {
            "dataset": "support.jsonl",
            "results": [{"model": "reference", "f1-score": 100.0, "rouge-l": 1.0, "contains": 100.0}],
        },
        "support-intent": {
            "dataset": "support.jsonl",
            "results": [{"model": "reference", "choice-accuracy": 100.0}],
        },
        "support-ticket": {
            "dataset": "support.jsonl",
            "results": [{"model": "reference", "json-valid": 100.0, "json-match": 100.0}],
        },
    }
    details = report["details"]
    assert details["support-replies"]["reference"]["n"] == len(SUPPORT) - 2  # two rows are few-shot turns
    assert details["support-intent"]["reference"]["n"] == len(SUPPORT)
    assert details["support-intent"]["reference"]["metrics"]["choice-accuracy"]["ci_low"] == 100.0
    assert report["gate"]["decision"] == "pass"


def reply(request: ChatRequest) -> str:
    """Arithmetic: right for even numbers, off by one for odd; tickets: right for odd sr-ids only."""
    prompt = request.prompt
    if match := re.fullmatch(r"What is (\d+) plus \1\?", prompt):
        number = int(match.group(1))
        return f"Let me add.\nAnswer: {2 * number + number % 2}"
    row = SUPPORT[prompt.rsplit("Message: ", 1)[1]]
    ticket = row["ticket"] if int(row["id"][-1]) % 2 else {"intent": "billing", "order": 1}
    return f"Sure:\n```json\n{json.dumps(ticket)}\n```"


@pytest.fixture
def chat_server() -> Iterator[ChatServer]:
    with ChatServer(reply=reply) as server:
        yield server


def test_custom_tasks_against_an_openai_compatible_server(
    tmp_path: Path, prefect_server, chat_server
) -> None:
    rows = [{"n": i, "question": f"What is {i} plus {i}?", "answer": str(2 * i)} for i in range(N_ARITHMETIC)]
    rows.append({"n": N_ARITHMETIC, "question": f"What is {N_ARITHMETIC} plus {N_ARITHMETIC}?"})  # no answer
    data = tmp_path / "arithmetic.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    request = {
        "name": "custom e2e",
        "models": [
            {
                "id": "local",
                "provider": "openai-compatible",
                "model": "local-1",
                "base_url": chat_server.url + "/v1",
                "concurrency": 8,
            }
        ],
        "tasks": [
            {
                "task": "arithmetic",
                "dataset": str(data),
                "id_field": "n",
                "system": "You add numbers.",
                "prompt": "{{ question }}",
                "target": "answer",
                "postprocess": [{"regex": r"Answer:\s*(\S+)"}],
                "metrics": ["exact-match", {"numeric-match": {"tolerance": 0.5}}, "contains"],
                "shard_size": 25,
            },
            {
                "task": "support-ticket",
                "dataset": str(EXAMPLE / "support.jsonl"),
                "id_field": "id",
                "prompt": "Ticket as JSON.\n\nMessage: {{ question }}",
                "target": "ticket",
                "postprocess": ["code-block"],
                "metrics": ["json-valid", "json-match"],
            },
        ],
        "gate": {
            "rules": [{"model": "local", "task": "arithmetic", "metric": "exact-match", "at_least": 60}]
        },
    }
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    out = tmp_path / "out"
    result = run_cli(["run", str(path), "--out", str(out)], cli_env(prefect_server, tmp_path / "store"))
    assert result.returncode == 1, result.stdout + result.stderr  # 50% < 60%: the gate fails
    report = json.loads((out / "report.json").read_text())

    # 104 scored items, the even half exactly right; odd ones are off by one: beyond the 0.5 tolerance
    assert report["report"]["arithmetic"] == {
        "dataset": "arithmetic.jsonl",
        "results": [{"model": "local", "exact-match": 50.0, "numeric-match": 50.0, "contains": 50.0}],
    }
    detail = report["details"]["arithmetic"]["local"]
    assert (detail["n_items"], detail["n"], detail["n_errors"], detail["inconclusive"]) == (
        105,
        104,
        1,
        False,
    )
    odd_ids = [row["id"] for row in SUPPORT.values() if int(row["id"][-1]) % 2]
    assert report["report"]["support-ticket"]["results"] == [
        {
            "model": "local",
            "json-valid": 100.0,
            "json-match": pytest.approx(100 * len(odd_ids) / len(SUPPORT)),
        }
    ]
    assert report["gate"]["decision"] == "fail"

    arithmetic = [r for r in chat_server.requests if "plus" in r.prompt]
    assert len(arithmetic) == N_ARITHMETIC  # the row without a target is recorded as an error, never sent
    assert arithmetic[0].messages[0] == {"role": "system", "content": "You add numbers."}
    assert {r.json["model"] for r in chat_server.requests} == {"local-1"}


def test_a_builtin_task_with_the_hub_offline_exits_2_and_points_to_path(
    tmp_path: Path, prefect_server
) -> None:
    request = tmp_path / "request.yaml"
    request.write_text(
        "name: offline\nmodels: [{id: reference, provider: builtin}]\n"
        "tasks: [{task: text-summarization, limit: 5}]\n"
    )
    env = cli_env(prefect_server, tmp_path / "store", HF_HUB_OFFLINE="1")
    result = run_cli(["run", str(request), "--out", str(tmp_path / "out")], env)
    assert result.returncode == 2, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert "cannot load 'abisee/cnn_dailymail' (test) from the Hugging Face hub" in output
    assert "Point the task at a local copy in the dataset's original format with `path:`" in output
