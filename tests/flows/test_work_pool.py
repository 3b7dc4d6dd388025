"""`execution: work-pool`: two real workers on one pool run the lanes; the report equals local mode's.

On SQLite with 2 subflows at once, so each lane runs two model x task subflows in its process; also on a
Prefect server backed by PostgreSQL (tests/support/postgres.py), with the SQLite cap on concurrent
subflows lifted (BENCHGATE_MAX_CONCURRENT_SUBFLOWS) as docs/operations.md recommends: a lane per unit.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT, cli_env, run_cli
from tests.support.prefect_server import PrefectServer
from tests.support.prefect_workers import SERIAL_WITH_WORKERS, Worker, deploy_worker_entry
from tests.support.processes import outputs

pytestmark = [pytest.mark.slow, SERIAL_WITH_WORKERS]

POOL = "benchgate-test-fanout"
DEPLOYMENT = "evaluate/fanout-test"
DATA = REPO_ROOT / "benchgate" / "data"


def fanout_request(execution: str) -> dict[str, Any]:
    return {
        "name": "Fan-out",
        "execution": execution,
        "models": [
            {"id": "reference", "provider": "builtin", "model": "reference"},
            {"id": "baseline", "provider": "builtin", "model": "baseline"},
        ],
        "tasks": [
            {
                "task": "text-summarization",
                "dataset": "cnn-dailymail",
                "path": str(DATA / "cnn_dailymail_sample.jsonl"),
                "limit": 8,
            },
            {
                "task": "question-answering",
                "dataset": "squad-v2",
                "path": str(DATA / "squad_v2_sample.json"),
                "limit": 12,
            },
        ],
        "gate": {
            "baseline": "baseline",
            "rules": [
                {
                    "model": "reference",
                    "task": "question-answering",
                    "metric": "f1-score",
                    "no_worse_than": "baseline",
                }
            ],
        },
    }


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    """What must not depend on where the subflows ran: metrics, intervals, counts, the gate's verdicts."""
    details = {
        task: {
            model: {k: d[k] for k in ("n", "n_items", "n_errors", "metrics", "dataset_revision")}
            for model, d in models.items()
        }
        for task, models in report["details"].items()
    }
    return {
        "status": report["status"],
        "report": report["report"],
        "details": details,
        "decision": report["gate"]["decision"],
        "rules": report["gate"]["rules"],
    }


async def lanes_and_subflows(
    server: PrefectServer, deployment_name: str
) -> tuple[list[Any], list[tuple[Any, Any]]]:
    """The deployment's flow runs (the lanes) and their subflows, each with the id of its lane."""
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
    )

    async with PrefectClient(server.api_url) as client:
        deployment = await client.read_deployment_by_name(deployment_name)
        lanes = await client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
        )
        subflows = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[lane.id for lane in lanes])
            )
        )
        parents = [
            await client.read_task_run(run.parent_task_run_id) for run in subflows if run.parent_task_run_id
        ]
        return lanes, [(run, parent.flow_run_id) for run, parent in zip(subflows, parents, strict=True)]


# database: (server fixture, BENCHGATE_MAX_CONCURRENT_SUBFLOWS, lanes for 2 models x 2 tasks)
SERVERS = {"sqlite": ("prefect_server", 2, 2), "postgresql": ("prefect_server_postgres", 16, 4)}


@pytest.mark.parametrize("database", SERVERS)
def test_two_workers_share_the_subflows_and_the_report_equals_local_mode(
    database: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    fixture, max_subflows, n_lanes = SERVERS[database]
    prefect_server: PrefectServer = request.getfixturevalue(fixture)
    shared_store = tmp_path / "shared-store"
    deploy_worker_entry(prefect_server, POOL, DEPLOYMENT)
    workers = [
        Worker(prefect_server, POOL, f"fanout-{i}", shared_store, 1, tmp_path / f"worker-{i}.log")
        for i in (1, 2)
    ]
    try:
        for worker in workers:
            worker.wait_started()
        for execution in ("work-pool", "local"):
            path = tmp_path / f"{execution}.yaml"
            path.write_text(yaml.safe_dump(fanout_request(execution)))
            store = shared_store if execution == "work-pool" else tmp_path / "local-store"
            env = cli_env(
                prefect_server,
                store,
                BENCHGATE_EVALUATE_DEPLOYMENT=DEPLOYMENT,
                BENCHGATE_MAX_CONCURRENT_SUBFLOWS=str(max_subflows),
            )
            started = time.monotonic()
            result = run_cli(["run", str(path), "--out", str(tmp_path / execution)], env, timeout=300)
            print(f"{database} {execution}: benchmark took {time.monotonic() - started:.1f} s")
            assert result.returncode == 0, outputs(result)
        lanes, subflows = asyncio.run(lanes_and_subflows(prefect_server, DEPLOYMENT))
    finally:
        for worker in workers:
            worker.stop()
    logs = "\n".join(w.log.read_text(errors="replace")[-2000:] for w in workers)
    assert len(lanes) == n_lanes, logs
    assert all(lane.state.is_completed() for lane in lanes), [lane.state for lane in lanes]
    assert sorted(lane.name.split(" · ")[1] for lane in lanes) == [
        f"lane {n} of {n_lanes}" for n in range(1, n_lanes + 1)
    ]
    ran_on = {lane.labels.get("prefect.worker.name") for lane in lanes}
    assert ran_on == {"fanout-1", "fanout-2"}, ran_on
    assert all("benchmark:Fan-out" in lane.tags for lane in lanes)
    # Every model x task is its own evaluate subflow of a lane, in the lane's process, as in local mode.
    assert sorted(run.name for run, _ in subflows) == sorted(
        f"evaluate · {m} · {t}"
        for m in ("reference", "baseline")
        for t in ("text-summarization", "question-answering")
    )
    assert all(run.state.is_completed() for run, _ in subflows), [run.state for run, _ in subflows]
    per_lane = {lane.id: sum(parent == lane.id for _, parent in subflows) for lane in lanes}
    assert sorted(per_lane.values()) == [4 // n_lanes] * n_lanes, per_lane
    remote = json.loads((tmp_path / "work-pool" / "report.json").read_text())
    local = json.loads((tmp_path / "local" / "report.json").read_text())
    assert remote["benchmarkId"] != local["benchmarkId"]
    assert comparable(remote) == comparable(local)
    assert remote["gate"]["decision"] == "pass"


def test_a_subflow_failing_on_a_lane_is_reported_and_the_lane_goes_on(
    prefect_server: PrefectServer, tmp_path: Path
) -> None:
    """A worker without a model's key: that unit fails with the reason, the lane's other unit completes."""
    shared_store = tmp_path / "shared-store"
    deploy_worker_entry(prefect_server, POOL, DEPLOYMENT)
    keyed = {
        "id": "keyed",
        "provider": "openai-compatible",
        "base_url": "http://127.0.0.1:9/v1",
        "api_key_env": "BENCHGATE_TEST_LANE_KEY",  # set for the dispatcher only
    }
    request = {**fanout_request("work-pool"), "gate": None}
    request["models"] = [keyed, request["models"][0]]
    request["tasks"] = request["tasks"][:1]
    path = tmp_path / "request.yaml"
    path.write_text(yaml.safe_dump(request))
    worker = Worker(prefect_server, POOL, "lane-1", shared_store, 1, tmp_path / "worker.log")
    try:
        env = cli_env(
            prefect_server,
            shared_store,
            BENCHGATE_EVALUATE_DEPLOYMENT=DEPLOYMENT,
            BENCHGATE_MAX_CONCURRENT_SUBFLOWS="1",  # one lane: keyed, then reference
            BENCHGATE_TEST_LANE_KEY="sk-dispatcher-only",
        )
        result = run_cli(["run", str(path), "--out", str(tmp_path / "out")], env, timeout=300)
    finally:
        worker.stop()
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["status"] == "failed", outputs(result)
    details = report["details"]["text-summarization"]
    assert "BENCHGATE_TEST_LANE_KEY" in details["keyed"]["failure"], details["keyed"]
    assert details["reference"]["failure"] is None
    assert details["reference"]["n"] == 8
    assert [row["model"] for row in report["report"]["text-summarization"]["results"]] == ["reference"]
