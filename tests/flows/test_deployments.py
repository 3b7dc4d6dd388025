"""prefect.yaml on a real server with a real worker: the nightly schedule, the release trigger, the API.

Times are printed (pytest -s): event to flow run created / running / completed, and submit to report.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from benchgate.interfaces.client import ApiClient
from benchgate.report.build import report_exit_code
from benchgate.run.release import release_payload, release_request
from tests.conftest import REPO_ROOT, cli_env, run_cli
from tests.interfaces.server import TOKEN, ApiServer
from tests.support.chat_servers import ChatServer
from tests.support.prefect_server import PrefectServer
from tests.support.prefect_workers import SERIAL_WITH_WORKERS, Worker, ensure_pool, prefect_cli, wait_for

pytestmark = SERIAL_WITH_WORKERS
POOL = "benchgate"  # the pool prefect.yaml names


@dataclass
class Deployed:
    server: PrefectServer
    store: Path
    worker: Worker


def client_call(server: PrefectServer, method: str, *args: Any, **kwargs: Any) -> Any:
    """One PrefectClient call against the test server, from synchronous test code."""
    from prefect.client.orchestration import PrefectClient

    async def call() -> Any:
        async with PrefectClient(server.api_url) as client:
            return await getattr(client, method)(*args, **kwargs)

    return asyncio.run(call())


def runs_of(server: PrefectServer, deployment_name: str) -> list[Any]:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    deployment = client_call(server, "read_deployment_by_name", deployment_name)
    return client_call(
        server,
        "read_flow_runs",
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
    )


def artifacts_of(server: PrefectServer, flow_run_id: Any) -> list[Any]:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    return client_call(
        server,
        "read_artifacts",
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])),
    )


@pytest.fixture(scope="module")
def deployed(prefect_server: PrefectServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    home = tmp_path_factory.mktemp("deployed")
    ensure_pool(prefect_server, POOL)
    started = time.monotonic()
    prefect_cli(prefect_server, "deploy", "--all")
    print(f"prefect deploy --all: {time.monotonic() - started:.1f} s")
    worker = Worker(prefect_server, POOL, "deploy-test", home / "store", 4, home / "worker.log")
    try:
        yield Deployed(prefect_server, home / "store", worker)
    finally:
        worker.stop()


def test_release_request_adds_the_candidate_and_names_it_in_the_rules() -> None:
    template = {
        "name": "Release check",
        "models": [{"id": "production", "provider": "builtin", "model": "baseline"}],
        "tasks": [
            {
                "task": "question-answering",
                "dataset": "squad-v2",
                "path": str(REPO_ROOT / "benchgate/data/squad_v2_sample.json"),
            }
        ],
        "gate": {
            "rules": [
                {
                    "model": "candidate",
                    "task": "question-answering",
                    "metric": "f1-score",
                    "no_worse_than": "baseline",
                }
            ]
        },
    }
    request = release_request(template, release_payload("new-1", "builtin", "reference"))
    assert [m.id for m in request.models] == ["production", "new-1"]
    assert request.gate is not None and request.gate.baseline == "production"
    assert request.gate.rules[0].model == "new-1"
    assert "candidate:new-1" in request.tags and request.name == "Release check · new-1"
    without_rules = release_request({**template, "gate": None}, release_payload("new-2", "builtin", "lead-3"))
    assert without_rules.gate is not None and [(r.model, r.metric) for r in without_rules.gate.rules] == [
        ("new-2", "exact-match")
    ]
    with pytest.raises(Exception, match=r"payload\.surprise: unknown key"):
        release_request(template, {"id": "x", "provider": "builtin", "surprise": 1})


@pytest.mark.slow
def test_nightly_is_deployed_with_its_schedule_and_request(deployed: Deployed) -> None:
    deployment = client_call(deployed.server, "read_deployment_by_name", "benchmark/nightly")
    assert [s.schedule.cron for s in deployment.schedules] == ["0 2 * * *"]
    assert deployment.schedules[0].active and deployment.schedules[0].schedule.timezone == "UTC"
    assert deployment.parameters == {"request_path": "deployments/requests/nightly.yaml", "cache": "refresh"}
    assert deployment.work_pool_name == POOL
    release = client_call(deployed.server, "read_deployment_by_name", "benchmark/on-model-release")
    assert release.parameters == {"template_path": "deployments/requests/release-template.yaml"}


@pytest.mark.slow
def test_model_released_event_runs_the_gated_template(deployed: Deployed, tmp_path: Path) -> None:
    env = cli_env(deployed.server, tmp_path)
    result = run_cli(["release", "cand-1", "--provider", "builtin", "--model", "reference"], env, timeout=120)
    emitted = time.monotonic()
    assert result.returncode == 0, result.stderr
    run = wait_for(
        lambda: next(iter(runs_of(deployed.server, "benchmark/on-model-release")), None),
        60,
        "the release flow run",
    )
    created = time.monotonic()
    wait_for(
        lambda: client_call(deployed.server, "read_flow_run", run.id).state.is_running() or None,
        120,
        "running",
        0.2,
    )
    running = time.monotonic()
    run = wait_for(
        lambda: (r := client_call(deployed.server, "read_flow_run", run.id)).state.is_final() and r,
        300,
        "final state",
        0.5,
    )
    done = time.monotonic()
    print(
        f"model.released -> flow run created {created - emitted:.1f} s, running {running - emitted:.1f} s, "
        f"completed {done - emitted:.1f} s"
    )
    assert run.state.is_completed(), deployed.worker.log.read_text()[-4000:]
    assert run.name == "release · cand-1"
    assert run.parameters["model"] == {"id": "cand-1", "provider": "builtin", "model": "reference"}
    assert run.parameters["template_path"] == "deployments/requests/release-template.yaml"

    artifacts = {a.key: a for a in artifacts_of(deployed.server, run.id)}
    report_key = next(k for k in artifacts if k and k.endswith("-report"))
    benchmark_id = report_key.removeprefix("benchgate-").removesuffix("-report")
    assert {f"benchgate-{benchmark_id}-{kind}" for kind in ("table", "files", "html")} <= set(artifacts)
    report = json.loads((deployed.store / "reports" / benchmark_id / "report.json").read_text())
    # The links, made when the run started, point at the files it wrote when it ended.
    for kind, name in (("files", "report.json"), ("html", "report.html")):
        stored = deployed.store / "reports" / benchmark_id / name
        assert artifacts[f"benchgate-{benchmark_id}-{kind}"].data == f"[{name}]({stored.resolve().as_uri()})"
        assert stored.is_file()
    assert report["status"] == "completed" and report["name"] == "Release check · cand-1"
    assert report["gate"]["decision"] == "pass"
    assert {r["model"] for r in report["report"]["question-answering"]["results"]} == {"production", "cand-1"}

    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    children = client_call(
        deployed.server,
        "read_flow_runs",
        flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run.id])),
    )
    names = {c.name for c in children}
    assert {"evaluate · cand-1 · question-answering", "evaluate · production · text-summarization"} <= names
    assert f"gate · {benchmark_id}" in names
    evaluate_run = next(c for c in children if c.name.startswith("evaluate"))
    assert {"benchmark:Release check · cand-1", "model:cand-1", "release", "candidate:cand-1"} <= set(
        evaluate_run.tags
    )


@pytest.mark.slow
def test_a_release_that_fails_the_gate_ends_failed_with_its_reports_written(
    deployed: Deployed, tmp_path: Path
) -> None:
    """Automations and notifications see the state: a regressed candidate is a Failed run."""
    env = cli_env(deployed.server, tmp_path)
    with ChatServer(reply=lambda request: "I could not say.") as server:
        result = run_cli(
            [
                "release",
                "cand-bad",
                "--provider",
                "openai-compatible",
                "--model",
                "bad",
                "--base-url",
                server.url + "/v1",
            ],
            env,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        run = wait_for(
            lambda: next(
                (
                    r
                    for r in runs_of(deployed.server, "benchmark/on-model-release")
                    if r.name == "release · cand-bad"
                ),
                None,
            ),
            60,
            "the release flow run",
        )
        run = wait_for(
            lambda: (r := client_call(deployed.server, "read_flow_run", run.id)).state.is_final() and r,
            300,
            "final state",
            0.5,
        )
    assert run.state.is_failed(), deployed.worker.log.read_text()[-4000:]
    assert "the gate failed (exit 1)" in (run.state.message or "")
    benchmark_id = (run.state.message or "").split()[1]
    report = json.loads((deployed.store / "reports" / benchmark_id / "report.json").read_text())
    assert report["status"] == "completed" and report["gate"]["decision"] == "fail"
    assert (deployed.store / "reports" / benchmark_id / "report.md").is_file()


@pytest.mark.slow
def test_nightly_run_refreshes_the_cache_and_reports_the_trend(deployed: Deployed) -> None:
    for _ in range(2):  # the second run has a previous one to compare with
        run = client_call(
            deployed.server, "create_flow_run_from_deployment", _deployment_id(deployed, "benchmark/nightly")
        )
        run = wait_for(
            lambda run=run: (
                (r := client_call(deployed.server, "read_flow_run", run.id)).state.is_final() and r
            ),
            300,
            "nightly",
        )
        assert run.state.is_completed(), deployed.worker.log.read_text()[-4000:]
    artifacts = {a.key: a for a in artifacts_of(deployed.server, run.id)}
    benchmark_id = (
        next(k for k in artifacts if k and k.endswith("-trend"))
        .removeprefix("benchgate-")
        .removesuffix("-trend")
    )
    trend_rows = json.loads(artifacts[f"benchgate-{benchmark_id}-trend"].data)
    assert {row["model"] for row in trend_rows} == {"production", "reference"}
    assert any(row["benchmark"] == benchmark_id and row["change"] == 0 for row in trend_rows)
    report_md = (deployed.store / "reports" / benchmark_id / "report.md").read_text()
    assert "## Trend" in report_md and benchmark_id in report_md.split("## Trend")[1]
    report = json.loads((deployed.store / "reports" / benchmark_id / "report.json").read_text())
    details = report["details"]["question-answering"]["reference"]
    assert details["reused"] == 0 and details["requests"] > 0  # cache: refresh asked again
    history = run_cli(
        ["history", "--metric", "f1-score", "--name", "Nightly"], cli_env(deployed.server, deployed.store)
    )
    assert history.returncode == 0 and history.stdout.count("reference") == 2, history.stdout


def _deployment_id(deployed: Deployed, name: str) -> Any:
    return client_call(deployed.server, "read_deployment_by_name", name).id


@pytest.mark.slow
def test_api_round_trip_through_the_on_demand_deployment(deployed: Deployed, tmp_path: Path) -> None:
    api = ApiServer(
        deployed.server, deployed.store, tmp_path / "api.log", "--deployment", "benchmark/on-demand"
    )
    client = ApiClient(api.url, TOKEN)
    try:
        request = json.loads(
            json.dumps(
                release_request(
                    _release_template(), release_payload("api-cand", "builtin", "reference")
                ).model_dump(mode="json")
            )
        )
        started = time.monotonic()
        benchmark_id = client.submit(request)
        first = client.report(benchmark_id)["status"]
        report = client.wait(benchmark_id, timeout=300, poll=0.5)
        print(f"submit-to-report through benchmark/on-demand: {time.monotonic() - started:.1f} s")
    finally:
        client.close()
        api.stop()
    assert first in ("queued", "running")
    assert report["status"] == "completed" and report_exit_code(report) == 0
    assert report["benchmarkId"] == benchmark_id and report["gate"]["decision"] == "pass"
    (run,) = [
        r
        for r in runs_of(deployed.server, "benchmark/on-demand")
        if r.parameters["benchmark_id"] == benchmark_id
    ]
    # report.json is published before the flow records history and ends: wait for its final state.
    run = wait_for(
        lambda: (r := client_call(deployed.server, "read_flow_run", run.id)).state.is_final() and r,
        60,
        "the on-demand run's final state",
    )
    assert run.state.is_completed()


@pytest.mark.slow
def test_a_request_given_to_the_deployment_directly_is_held_to_the_policy(
    deployed: Deployed, tmp_path: Path
) -> None:
    """Not through the API but as `prefect deployment run` would: the worker (no policy file here, so the
    safe defaults) refuses a server file and a secret sent to another host before reading or calling."""
    server_file = tmp_path / "server-secret.jsonl"
    server_file.write_text('{"q": "TOPSECRET-ROW", "a": "x"}\n')
    model = {
        "id": "x",
        "provider": "openai-compatible",
        "base_url": "http://127.0.0.1:9/v1",
        "api_key_env": "PATH",
    }
    task = {
        "task": "sums",
        "dataset": str(server_file),
        "prompt": "{{ q }}",
        "target": "a",
        "metrics": ["exact-match"],
    }
    deployment = client_call(deployed.server, "read_deployment_by_name", "benchmark/on-demand")
    run = client_call(
        deployed.server,
        "create_flow_run_from_deployment",
        deployment.id,
        parameters={"request": {"name": "direct", "models": [model], "tasks": [task]}},
    )
    run = wait_for(
        lambda: (r := client_call(deployed.server, "read_flow_run", run.id)).state.is_final() and r,
        300,
        "final state",
        0.5,
    )
    assert run.state.is_failed(), run.state
    message = run.state.message or ""
    for problem in (
        "models[0].base_url: the server's policy does not allow calling this host",
        "models[0].api_key_env: not a secret the server's policy lets requests use",
        "tasks[0].dataset: outside the dataset directories the server's policy allows",
    ):
        assert problem in message, message
    assert "TOPSECRET" not in message and "TOPSECRET" not in deployed.worker.log.read_text()


def _release_template() -> dict[str, Any]:
    from benchgate.run.release import load_template

    return load_template(REPO_ROOT / "deployments" / "requests" / "release-template.yaml")


def test_serve_builds_the_same_deployments_as_prefect_yaml() -> None:
    from deployments.serve import runner_deployments

    built = {f"{d.flow_name}/{d.name}": d for d in runner_deployments()}
    assert set(built) == {
        "benchmark/nightly",
        "benchmark/on-model-release",
        "benchmark/on-demand",
        "evaluate/work-pool",
    }
    assert [s.schedule.cron for s in built["benchmark/nightly"].schedules] == ["0 2 * * *"]
    (trigger,) = built["benchmark/on-model-release"].triggers
    assert trigger.expect == {"model.released"} and trigger.parameters["model"] == "{{ event.payload }}"
