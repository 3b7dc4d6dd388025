"""The HTTP API through a real uvicorn server on 127.0.0.1, benchmarks run in its own process pool."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT, cli_env, run_cli
from tests.interfaces.server import TOKEN, ApiServer
from tests.support.prefect_server import PrefectServer

pytestmark = pytest.mark.slow

DATA = REPO_ROOT / "benchgate" / "data"


def small_request(name: str, rule: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "models": [
            {"id": "reference", "provider": "builtin", "model": "reference"},
            {"id": "baseline", "provider": "builtin", "model": "baseline"},
        ],
        "tasks": [
            {
                "task": "question-answering",
                "dataset": "squad-v2",
                "path": str(DATA / "squad_v2_sample.json"),
                "limit": 8,
            }
        ],
        "gate": {"baseline": "baseline", "rules": [rule]},
    }


PASSING = {"model": "reference", "task": "question-answering", "metric": "f1-score", "at_least": 99}
FAILING = {"model": "baseline", "task": "question-answering", "metric": "f1-score", "at_least": 99}


@pytest.fixture(scope="module")
def api(prefect_server: PrefectServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    home = tmp_path_factory.mktemp("api")
    server = ApiServer(prefect_server, home / "store", home / "api.log")
    try:
        yield server
    finally:
        server.stop()


def test_refuses_to_start_without_a_token_unless_local_and_explicit(
    prefect_server: PrefectServer, tmp_path: Path
) -> None:
    env = cli_env(prefect_server, tmp_path, BENCHGATE_API_TOKEN="")
    for args in (["api"], ["api", "--host", "0.0.0.0", "--no-auth-local"]):
        result = run_cli(args, env, timeout=60)
        assert result.returncode == 2, result.stderr
        assert "BENCHGATE_API_TOKEN is not set" in result.stderr


def test_every_route_but_health_needs_the_token(api: ApiServer) -> None:
    for token in (None, "wrong-token", TOKEN + "x"):
        with api.client(token) as client:
            assert client.get("/v1/benchmarks").status_code == 401
            assert client.post("/v1/benchmarks", json={}).status_code == 401
            assert client.get("/v1/benchmarks/bmk-000000000000").status_code == 401
    with api.client(None) as client:
        assert client.get("/v1/health").status_code == 200


def test_invalid_requests_get_422_with_field_paths(api: ApiServer) -> None:
    bad = small_request("bad", PASSING)
    bad["models"][1]["provider"] = "nope"
    bad["tasks"][0]["limt"] = 3
    with api.client() as client:
        response = client.post("/v1/benchmarks", json=bad)
        assert response.status_code == 422
        problems = response.json()["problems"]
        assert any(p.startswith("models[1].provider:") for p in problems), problems
        assert any(p.startswith("tasks[0].limt: unknown key") for p in problems), problems
        response = client.post("/v1/benchmarks", json=[1, 2])
        assert response.status_code == 422 and response.json()["problems"]
        response = client.post(
            "/v1/benchmarks", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert response.status_code == 422


def test_hostile_bodies_get_422_not_a_crash(api: ApiServer) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    repeated = b'{"name": "a", "models": [], "name": "b"}'
    with api.client() as client:
        for body, problem in (
            (deep, "nested more than"),
            (repeated, "duplicate key 'name'"),
            (b"\xff\xfe{}", "not UTF-8"),
        ):
            response = client.post(
                "/v1/benchmarks", content=body, headers={"content-type": "application/json"}
            )
            assert response.status_code == 422, body[:20]
            assert any(problem in p for p in response.json()["problems"]), response.json()


def test_a_corrupt_report_in_the_store_does_not_break_the_listing(api: ApiServer, tmp_path: Path) -> None:
    store = Path(api.env["BENCHGATE_STORE"])
    (store / "api" / "submissions").mkdir(parents=True, exist_ok=True)
    (store / "api" / "submissions" / "bmk-00000000dead.json").write_text(
        json.dumps(
            {"benchmarkId": "bmk-00000000dead", "name": "broken", "submittedAt": "2026-01-01T00:00:00Z"}
        )
    )
    (store / "api" / "submissions" / "bmk-00000000beef.json").write_text("{half a submissi")
    (store / "reports" / "bmk-00000000dead").mkdir(parents=True, exist_ok=True)
    (store / "reports" / "bmk-00000000dead" / "report.json").write_text('{"status": "compl')
    with api.client() as client:
        response = client.get("/v1/benchmarks", params={"limit": 200})
        assert response.status_code == 200
        listed = {item["benchmarkId"]: item["status"] for item in response.json()["benchmarks"]}
        assert listed["bmk-00000000dead"] == "unreadable"
        assert "bmk-00000000beef" not in listed


def test_bodies_over_the_limit_are_refused(api: ApiServer) -> None:
    big = small_request("big", PASSING) | {"tags": ["x" * 1000] * 1100}
    with api.client() as client:
        assert client.post("/v1/benchmarks", json=big).status_code == 413

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit still holds
            yield b'{"name": "'
            for _ in range(1100):
                yield b"x" * 1000
            yield b'"}'

        response = client.post(
            "/v1/benchmarks", content=chunks(), headers={"content-type": "application/json"}
        )
        assert response.status_code == 413


def test_ids_are_validated_before_they_reach_the_store(api: ApiServer) -> None:
    with api.client() as client:
        for bad in ("bmk-XYZ", "bmk-0000000000000", "..", "bmk-..%2F..%2Fapi"):
            assert client.get(f"/v1/benchmarks/{bad}").status_code in (404, 422), bad
        assert client.get("/v1/benchmarks/bmk-000000000000").status_code == 404


def test_submit_and_wait_round_trip_with_run_exit_codes(
    api: ApiServer, prefect_server: PrefectServer, tmp_path: Path
) -> None:
    env = cli_env(prefect_server, tmp_path / "unused-store", BENCHGATE_API_TOKEN=TOKEN)
    procs = {}
    started = time.monotonic()
    for name, rule in (("api-pass", PASSING), ("api-fail", FAILING)):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(small_request(name, rule)))
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", "benchgate", "submit", str(path), "--api", api.url, "--wait"],
            env=env,
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    outputs = {name: proc.communicate(timeout=300) for name, proc in procs.items()}
    elapsed = time.monotonic() - started
    print(f"submit-to-report (process pool, two at once): {elapsed:.1f} s")
    assert procs["api-pass"].returncode == 0, outputs["api-pass"]
    assert procs["api-fail"].returncode == 1, outputs["api-fail"]
    ids = {name: out.split("submitted ", 1)[1].split()[0] for name, (out, _) in outputs.items()}
    with api.client() as client:
        listed = {b["benchmarkId"]: b for b in client.get("/v1/benchmarks").json()["benchmarks"]}
        for name, decision in (("api-pass", "pass"), ("api-fail", "fail")):
            report = client.get(f"/v1/benchmarks/{ids[name]}").json()
            assert report["status"] == "completed" and report["gate"]["decision"] == decision
            assert report["report"]["question-answering"]["results"][0]["model"] == "reference"
            assert listed[ids[name]]["gate"] == decision and listed[ids[name]]["status"] == "completed"


def test_submit_reports_invalid_requests_with_exit_2(
    api: ApiServer, prefect_server: PrefectServer, tmp_path: Path
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"name": "x", "models": [], "tasks": []}))
    result = run_cli(
        ["submit", str(path), "--api", api.url], cli_env(prefect_server, tmp_path, BENCHGATE_API_TOKEN=TOKEN)
    )
    assert result.returncode == 2 and "models" in result.stderr
    result = run_cli(
        ["submit", str(REPO_ROOT / "examples" / "quickstart.yaml"), "--api", api.url],
        cli_env(prefect_server, tmp_path, BENCHGATE_API_TOKEN="wrong"),
    )
    assert result.returncode == 2 and "refused the token" in result.stderr
