"""Infrastructure faults end to end: inconclusive (exit 3), refused keys (exit 2), healing reruns."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.conftest import cli_env, run_cli
from tests.e2e.test_pipeline import DATA, FAKE_KEY, SQUAD, good_reply
from tests.support.chat_servers import ChatRequest, ChatServer, Reply

pytestmark = pytest.mark.slow


def qa_request(path: Path, server_url: str, *, gate: dict | None = None) -> Path:
    models = [
        {
            "id": model_id,
            "provider": "openai-compatible",
            "model": f"{model_id}-1",
            "base_url": server_url + "/v1",
            "api_key_env": "E2E_API_KEY",
            "max_attempts": 2,
            "retry_budget_seconds": 5,
        }
        for model_id in ("good", "flaky")
    ]
    task = {"task": "question-answering", "path": str(DATA / "squad_v2_sample.json")}
    path.write_text(json.dumps({"name": "faults", "models": models, "tasks": [task], "gate": gate}))
    return path


def test_errors_beyond_the_budget_are_inconclusive_then_heal(tmp_path: Path, prefect_server) -> None:
    broken = {"on": True}

    def reply(request: ChatRequest) -> str | Reply:
        if request.model == "flaky-1" and broken["on"] and len(request.prompt) % 3:
            return Reply(status=503, message="upstream overloaded")
        return good_reply(request)

    rules = [
        {"model": "flaky", "task": "question-answering", "metric": "exact-match", "no_worse_than": "good"}
    ]
    with ChatServer(reply=reply) as server:
        request = qa_request(tmp_path / "request.json", server.url, gate={"rules": rules})
        env = cli_env(prefect_server, tmp_path / "store", E2E_API_KEY=FAKE_KEY)
        first = run_cli(["run", str(request), "--out", str(tmp_path / "first")], env)
        assert first.returncode == 3, first.stdout + first.stderr
        report = json.loads((tmp_path / "first" / "report.json").read_text())
        flaky = report["details"]["question-answering"]["flaky"]
        assert flaky["inconclusive"] is True
        assert flaky["n_errors"] > 0 and flaky["n"] + flaky["n_errors"] == len(SQUAD)
        assert report["gate"]["decision"] == "inconclusive"
        failed_items = flaky["n_errors"]

        broken["on"] = False
        before = server.count
        second = run_cli(["run", str(request), "--out", str(tmp_path / "second")], env)
        assert second.returncode == 0, second.stdout + second.stderr
        assert server.count - before == failed_items, "only the errored items are asked again"
        healed = json.loads((tmp_path / "second" / "report.json").read_text())
        good, flaky = (
            {row["model"]: row for row in healed["report"]["question-answering"]["results"]}[m]
            for m in ("good", "flaky")
        )
        assert flaky["exact-match"] == good["exact-match"]


def test_a_refused_key_fails_fast_with_the_providers_message(tmp_path: Path, prefect_server) -> None:
    def reply(request: ChatRequest) -> str | Reply:
        if request.model == "flaky-1":
            return Reply(status=401, message="Incorrect API key provided: sk-...XYZ")
        return good_reply(request)

    with ChatServer(reply=reply) as server:
        request = qa_request(tmp_path / "request.json", server.url)
        env = cli_env(prefect_server, tmp_path / "store", E2E_API_KEY=FAKE_KEY)
        result = run_cli(["run", str(request), "--out", str(tmp_path / "out")], env)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "Incorrect API key provided" in result.stdout + result.stderr
        flaky_calls = sum(1 for r in server.requests if r.model == "flaky-1")
        assert flaky_calls <= 8, f"a refused key must not be retried item after item ({flaky_calls} calls)"
        report = json.loads((tmp_path / "out" / "report.json").read_text())
        assert report["status"] == "failed"
        assert [r["model"] for r in report["report"]["question-answering"]["results"]] == ["good"]
    task_runs = httpx.post(
        f"{prefect_server.api_url}/task_runs/filter",
        json={"task_runs": {"name": {"like_": "generate · flaky ·"}}, "limit": 50},
    ).json()
    assert task_runs, "the refused shard's generate task is recorded"
    assert max(run["run_count"] for run in task_runs) == 1, "Prefect must not retry a refused configuration"


def test_missing_key_variable_is_a_configuration_error(tmp_path: Path, prefect_server) -> None:
    request = qa_request(tmp_path / "request.json", "http://127.0.0.1:9")
    env = cli_env(prefect_server, tmp_path / "store")
    env.pop("E2E_API_KEY", None)
    result = run_cli(["run", str(request)], env)
    assert result.returncode == 2
    assert "E2E_API_KEY" in result.stderr
    assert not (tmp_path / "store").exists()


def test_the_key_reaches_no_prefect_record(tmp_path: Path, prefect_server) -> None:
    """Parameters, logs and artifacts on the Prefect server never carry the API key."""
    with ChatServer(reply=good_reply) as server:
        request = qa_request(tmp_path / "request.json", server.url)
        env = cli_env(prefect_server, tmp_path / "store", E2E_API_KEY=FAKE_KEY)
        result = run_cli(["run", str(request)], env)
        assert result.returncode == 0, result.stdout + result.stderr
    api = prefect_server.api_url
    runs = httpx.post(f"{api}/flow_runs/filter", json={"limit": 200}).text
    logs = httpx.post(f"{api}/logs/filter", json={"limit": 200}).text
    artifacts = httpx.post(f"{api}/artifacts/filter", json={"limit": 200}).text
    assert "faults" in runs and "E2E_API_KEY" in runs, "the run and its key reference are recorded"
    for text in (runs, logs, artifacts):
        assert FAKE_KEY not in text


def test_a_run_that_dies_is_recorded_as_failed_not_running(tmp_path: Path, prefect_server) -> None:
    """Offline, a hub dataset cannot load: exit 2 with the way out, and the stored status says failed."""
    request = tmp_path / "request.json"
    model = {"id": "ref", "provider": "builtin", "model": "reference"}
    request.write_text(
        json.dumps({"name": "offline", "models": [model], "tasks": [{"task": "text-summarization"}]})
    )
    env = cli_env(prefect_server, tmp_path / "store", HF_HUB_OFFLINE="1")
    result = run_cli(["run", str(request)], env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "path:" in result.stdout and "Traceback" not in result.stdout + result.stderr
    (stored,) = (tmp_path / "store" / "reports").glob("*/report.json")
    assert json.loads(stored.read_text())["status"] == "failed"
