"""Two `benchgate run` of one request on one store: the model is asked once per item, not twice."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, cli_env
from tests.support.chat_servers import ChatServer

pytestmark = pytest.mark.slow
N_ITEMS = 200


def echo_request(path: Path, server_url: str) -> Path:
    data = path.parent / "items.jsonl"
    data.write_text(
        "".join(json.dumps({"id": f"i-{i}", "q": f"say {i}", "a": f"say {i}"}) + "\n" for i in range(N_ITEMS))
    )
    request = {
        "name": "concurrent",
        "models": [
            {"id": "echo", "provider": "openai-compatible", "base_url": server_url + "/v1", "concurrency": 4}
        ],
        "tasks": [
            {
                "task": "echo",
                "dataset": str(data),
                "prompt": "{{ q }}",
                "target": "{{ a }}",
                "metrics": ["exact-match"],
            }
        ],
    }
    path.write_text(json.dumps(request))
    return path


def test_a_second_run_waits_for_the_first_and_reuses_its_answers(tmp_path: Path, prefect_server) -> None:
    with ChatServer(latency=0.1) as server:
        request = echo_request(tmp_path / "request.json", server.url)
        env = cli_env(prefect_server, tmp_path / "store")
        runs = [
            subprocess.Popen(
                [sys.executable, "-m", "benchgate", "run", str(request), "--out", str(tmp_path / f"out-{i}")],
                env=env,
                cwd=REPO_ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for i in range(2)
        ]
        outputs = [run.communicate(timeout=300)[0] for run in runs]
        assert [run.returncode for run in runs] == [0, 0], outputs
        assert len(server.requests) == N_ITEMS, "each item is asked once across both runs"
    reports = [json.loads((tmp_path / f"out-{i}" / "report.json").read_text()) for i in range(2)]
    assert reports[0]["report"] == reports[1]["report"]
    reused = sorted(r["details"]["echo"]["echo"]["reused"] for r in reports)
    assert reused == [0, N_ITEMS]
