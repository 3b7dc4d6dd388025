"""`benchgate run` starts Prefect's temporary server itself only when no server is configured anywhere."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import prefect
import psutil
import pytest

from benchgate.errors import ConfigurationError
from benchgate.interfaces import embedded
from benchgate.interfaces.embedded import EmbeddedServer
from tests.conftest import REPO_ROOT, run_cli
from tests.support.chat_servers import ChatServer


@pytest.fixture
def unconfigured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No Prefect settings anywhere: environment, PREFECT_HOME's profiles, the working directory."""
    for name in (
        "PREFECT_API_URL",
        "PREFECT_PROFILE",
        "PREFECT_PROFILES_PATH",
        "PREFECT_SERVER_EPHEMERAL_ENABLED",
        "PREFECT_CLIENT_SERVER_VERSION_CHECK_ENABLED",
    ):
        monkeypatch.setenv(name, "")  # so that whatever the test or the code sets is undone afterwards
        monkeypatch.delenv(name)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "home"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path


URL = "http://10.0.0.1:4200/api"
FILES = {
    "profiles.toml": f'active = "mine"\n[profiles.mine]\nPREFECT_API_URL = "{URL}"\n',
    "prefect.toml": f'[api]\nurl = "{URL}"\n',
    ".env": f"PREFECT_API_URL={URL}\n",
}


@pytest.mark.parametrize("where", ["environment", "disabled", *FILES])
def test_a_configured_server_is_left_to_prefect(
    unconfigured: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    home = unconfigured / "home"
    home.mkdir()
    if where == "environment":
        monkeypatch.setenv("PREFECT_API_URL", URL)
    elif where == "disabled":
        monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_ENABLED", "false")
    else:
        (home if where == "profiles.toml" else Path.cwd()).joinpath(where).write_text(FILES[where])
    assert EmbeddedServer.start_if_unconfigured() is None
    assert "PREFECT_API_URL" not in os.environ or where == "environment"


@pytest.mark.slow
def test_a_run_without_a_server_records_its_flow_and_task_runs(unconfigured: Path) -> None:
    request = unconfigured / "request.json"
    request.write_text(
        json.dumps(
            {
                "name": "embedded",
                "models": [{"id": "reference", "provider": "builtin", "model": "reference"}],
                "tasks": [
                    {
                        "task": "question-answering",
                        "path": str(REPO_ROOT / "benchgate/data/squad_v2_sample.json"),
                    }
                ],
            }
        )
    )
    env = {**os.environ, "BENCHGATE_STORE": str(unconfigured / "store")}
    result = run_cli(["run", str(request), "--out", str(unconfigured / "out")], env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Error logging to API" not in result.stdout + result.stderr, "logs go before the server stops"
    with sqlite3.connect(unconfigured / "home" / "prefect.db") as db:
        flows = {name: json.loads(tags) for name, tags in db.execute("select name, tags from flow_run")}
        tasks = {name: json.loads(tags) for name, tags in db.execute("select name, tags from task_run")}
        task_states = dict(db.execute("select name, state_type from task_run"))
        progress = db.execute("select data from artifact where type = 'progress'").fetchall()
    assert set(flows) == {"benchmark · embedded", "evaluate · reference · question-answering"}
    assert "generate · reference · question-answering · shard 0" in tasks
    # The command loaded the examples and started generating before the flow existed (a head start).
    assert "load · question-answering" not in tasks
    # The subflow is tagged for people; task runs are not, or each would ask for tag concurrency slots.
    subflow_tags = flows["evaluate · reference · question-answering"]
    assert set(subflow_tags) == {"benchmark:embedded", "model:reference"}
    # ("evaluate-0" is Prefect's stand-in for the subflow among its parent's task runs.)
    assert all(tags == [] for name, tags in tasks.items() if name != "evaluate-0"), tasks
    assert [float(data) for (data,) in progress] == [100.0]
    # Recorded to the end: the server stopped once it had recorded the last task run, the history's.
    assert any(name.startswith("record-history") for name in task_states), task_states
    assert set(task_states.values()) == {"COMPLETED"}, task_states


def echo_request(directory: Path, chat: ChatServer, name: str, n: int, **model: Any) -> Path:
    """A request for one model on `chat` and a custom exact-match task of n items it answers right."""
    items = directory / "items.jsonl"
    items.write_text(
        "".join(json.dumps({"id": str(i), "q": f"q{i}", "a": f"echo: q{i}"}) + "\n" for i in range(n))
    )
    task = {
        "task": "t",
        "dataset": str(items),
        "id_field": "id",
        "prompt": "{{ q }}",
        "target": "a",
        "metrics": ["exact-match"],
    }
    request = directory / "request.json"
    models = [{"id": "m", "provider": "openai-compatible", "base_url": chat.url + "/v1", **model}]
    request.write_text(json.dumps({"name": name, "models": models, "tasks": [task]}))
    return request


@pytest.mark.slow
def test_the_model_answers_while_the_server_starts(unconfigured: Path) -> None:
    """Generation does not wait for Prefect: the first request goes out before the benchmark flow run
    starts, and its subflow adopts what was started (each item asked once)."""
    with ChatServer(latency=0.05) as chat:
        request = echo_request(unconfigured, chat, "early", 120, concurrency=4)
        env = {**os.environ, "BENCHGATE_STORE": str(unconfigured / "store")}
        result = run_cli(["run", str(request), "--out", str(unconfigured / "out")], env)
        assert result.returncode == 0, result.stdout + result.stderr
        first_request = time.time() - (time.monotonic() - chat.requests[0].received_at)
        assert chat.count == 120
    report = json.loads((unconfigured / "out" / "report.json").read_text())
    assert report["report"]["t"]["results"] == [{"model": "m", "exact-match": 100.0}]
    with sqlite3.connect(unconfigured / "home" / "prefect.db") as db:
        (started,) = db.execute("select start_time from flow_run where name = 'benchmark · early'").fetchone()
        generated = db.execute("select count(*) from task_run where name like 'generate · m · t%'").fetchone()
    flow_started = datetime.fromisoformat(started).replace(tzinfo=timezone.utc).timestamp()
    assert first_request < flow_started - 0.3, (first_request, flow_started)
    assert generated == (1,)


@pytest.mark.slow
def test_a_sigkilled_run_leaves_no_server_and_no_generation_process_behind(unconfigured: Path) -> None:
    with ChatServer(latency=0.5) as chat:
        request = echo_request(unconfigured, chat, "killed", 50)
        env = {**os.environ, "BENCHGATE_STORE": str(unconfigured / "store")}
        run = subprocess.Popen(
            [sys.executable, "-m", "benchgate", "run", str(request)],
            env=env,
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        children: list[psutil.Process] = []
        while time.monotonic() < deadline and run.poll() is None:
            children = psutil.Process(run.pid).children()
            if chat.requests and len(children) == 2:
                break
            time.sleep(0.05)
        assert chat.requests and run.poll() is None and len(children) == 2, "the run was not generating"
        run.send_signal(signal.SIGKILL)  # only the run: its children are not in any group we kill
        run.wait()
        _, alive = psutil.wait_procs(children, timeout=15)
        for process in alive:
            process.kill()
        assert not alive, "the generation process or the temporary server outlived its run"


@pytest.mark.slow
def test_where_it_cannot_fork_the_server_is_a_fresh_interpreter(
    unconfigured: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The path macOS takes (forking is tested by the runs above: not from a test process's threads)."""
    monkeypatch.setattr(embedded, "FORK_SERVER", False)
    server = EmbeddedServer.start_if_unconfigured()
    assert server is not None and server.pid is not None
    pid = server.pid
    try:
        server.wait_ready()
        assert psutil.Process(pid).cmdline()[1:3] == ["-m", "benchgate.interfaces.embedded"]
        with urllib.request.urlopen(server.api_url + "/admin/version", timeout=10) as response:
            assert json.load(response) == prefect.__version__
        # Which is why the run's clients are told not to ask it.
        assert os.environ["PREFECT_CLIENT_SERVER_VERSION_CHECK_ENABLED"] == "false"
        assert (unconfigured / "home" / "prefect.db").exists()  # the run's PREFECT_HOME
    finally:
        server.stop()
    assert server.pid is None and not psutil.pid_exists(pid)


@pytest.mark.slow
def test_a_server_that_cannot_start_is_reported_once_it_dies(
    unconfigured: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The readiness request waits in the listening socket's backlog; when the server dies first, the
    socket dies with it and the request is refused: the run fails then, not after the start-up timeout."""
    monkeypatch.setattr(embedded, "FORK_SERVER", False)
    monkeypatch.setenv("PREFECT_API_DATABASE_CONNECTION_URL", "sqlite+aiosqlite:////dev/null/prefect.db")
    server = EmbeddedServer.start_if_unconfigured()
    assert server is not None
    started = time.monotonic()
    with pytest.raises(ConfigurationError, match="did not start"):
        server.wait_ready()
    assert time.monotonic() - started < 30, "waited for the timeout, not for the server"
    assert server.pid is None
