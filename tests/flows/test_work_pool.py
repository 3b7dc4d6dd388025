"""`execution: work-pool`: two real workers on one pool run the subflows; the report equals local mode's.

Also on a Prefect server backed by PostgreSQL (tests/support/postgres.py), with the SQLite cap on
concurrent subflows lifted (BENCHGATE_MAX_CONCURRENT_SUBFLOWS), as docs/operations.md recommends.
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
from tests.support.prefect_workers import Worker, deploy_worker_entry

pytestmark = pytest.mark.slow

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


async def runs_of(server: PrefectServer, deployment_name: str) -> list[Any]:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    async with PrefectClient(server.api_url) as client:
        deployment = await client.read_deployment_by_name(deployment_name)
        return await client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
        )


SERVERS = {"sqlite": ("prefect_server", 4), "postgresql": ("prefect_server_postgres", 16)}


@pytest.mark.parametrize("database", SERVERS)
def test_two_workers_share_the_subflows_and_the_report_equals_local_mode(
    database: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    fixture, max_subflows = SERVERS[database]
    prefect_server: PrefectServer = request.getfixturevalue(fixture)
    shared_store = tmp_path / "shared-store"
    deploy_worker_entry(prefect_server, POOL, DEPLOYMENT)
    workers = [
        Worker(prefect_server, POOL, f"fanout-{i}", shared_store, 1, tmp_path / f"worker-{i}.log")
        for i in (1, 2)
    ]
    try:
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
            assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        runs = asyncio.run(runs_of(prefect_server, DEPLOYMENT))
    finally:
        for worker in workers:
            worker.stop()
    logs = "\n".join(w.log.read_text(errors="replace")[-2000:] for w in workers)
    assert len(runs) == 4, logs
    assert all(run.state.is_completed() for run in runs), [run.state for run in runs]
    assert sorted(run.name for run in runs) == sorted(
        f"evaluate · {m} · {t}"
        for m in ("reference", "baseline")
        for t in ("text-summarization", "question-answering")
    )
    ran_on = {run.labels.get("prefect.worker.name") for run in runs}
    assert ran_on == {"fanout-1", "fanout-2"}, ran_on
    assert all("benchmark:Fan-out" in run.tags for run in runs)
    remote = json.loads((tmp_path / "work-pool" / "report.json").read_text())
    local = json.loads((tmp_path / "local" / "report.json").read_text())
    assert remote["benchmarkId"] != local["benchmarkId"]
    assert comparable(remote) == comparable(local)
    assert remote["gate"]["decision"] == "pass"
