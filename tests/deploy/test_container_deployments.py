"""deployments/containers.yaml: the Docker and Kubernetes deployments load in Prefect and deploy.

Prefect's own loading (the model `prefect deploy` validates prefect.yaml files with), then a real
`prefect deploy` against the test server onto pools of type docker and kubernetes, created with the base
job templates Prefect ships for those workers: the server checks every job variable against its pool's
schema, so a wrong name or type fails here and not on a cluster.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import prefect
import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.support.prefect_server import PrefectServer
from tests.support.prefect_workers import prefect_cli

CONTAINERS = REPO_ROOT / "deployments" / "containers.yaml"
POOLS = {
    "benchgate-docker": ("prefect-docker", "docker"),
    "benchgate-kubernetes": ("prefect-kubernetes", "kubernetes"),
}
PULL = [{"prefect.deployments.steps.set_working_directory": {"directory": "/opt/benchgate"}}]
STORE = "s3://benchgate-test/store"


def base_job_template(collection: str, worker_type: str) -> dict[str, Any]:
    """The template a `prefect work-pool create --type ...` would fetch, from Prefect's bundled copy."""
    path = Path(prefect.__file__).parent / "server/api/collections_data/views/aggregate-worker-metadata.json"
    return json.loads(path.read_text())[collection][worker_type]["default_base_job_configuration"]


@pytest.mark.parametrize("config", ["prefect.yaml", "deployments/containers.yaml"])
def test_prefect_loads_the_deployment_file(config: str) -> None:
    from prefect.cli.deploy._models import PrefectYamlModel

    raw = yaml.safe_load((REPO_ROOT / config).read_text())
    model = PrefectYamlModel.model_validate(raw)  # raises on any unknown or mistyped field
    assert [d.name for d in model.deployments] == [d["name"] for d in raw["deployments"]]
    for deployment in model.deployments:
        assert deployment.entrypoint is not None
        assert (REPO_ROOT / deployment.entrypoint.split(":")[0]).is_file(), deployment.entrypoint


async def _create_pools(server: PrefectServer) -> None:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.actions import WorkPoolCreate

    async with PrefectClient(server.api_url) as client:
        for name, (collection, worker_type) in POOLS.items():
            pool = WorkPoolCreate(
                name=name, type=worker_type, base_job_template=base_job_template(collection, worker_type)
            )
            await client.create_work_pool(pool, overwrite=True)


async def _deployments(server: PrefectServer) -> dict[str, Any]:
    from prefect.client.orchestration import PrefectClient

    async with PrefectClient(server.api_url) as client:
        names = [d["name"] for d in yaml.safe_load(CONTAINERS.read_text())["deployments"]]
        flows = {"on-demand": "benchmark", "work-pool": "evaluate"}
        return {
            name: await client.read_deployment_by_name(f"{flows[name.rsplit('-', 1)[0]]}/{name}")
            for name in names
        }


async def _refused(server: PrefectServer, flow_id: Any, job_variables: dict[str, Any]) -> str:
    from prefect.client.orchestration import PrefectClient

    async with PrefectClient(server.api_url) as client:
        try:
            await client.create_deployment(
                flow_id, "schema-check", work_pool_name="benchgate-kubernetes", job_variables=job_variables
            )
        except Exception as error:
            return str(error)
    raise AssertionError(f"job variables {job_variables} were accepted")


@pytest.mark.slow
def test_the_container_deployments_deploy_onto_docker_and_kubernetes_pools(
    prefect_server: PrefectServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(_create_pools(prefect_server))
    monkeypatch.setenv("BENCHGATE_STORE", STORE)  # `{{ $BENCHGATE_STORE }}` is read at deploy time
    prefect_cli(prefect_server, "deploy", "--prefect-file", "deployments/containers.yaml", "--all")
    deployed = asyncio.run(_deployments(prefect_server))
    assert sorted(deployed) == [
        "on-demand-docker",
        "on-demand-kubernetes",
        "work-pool-docker",
        "work-pool-kubernetes",
    ]
    for name, deployment in deployed.items():
        assert deployment.work_pool_name == f"benchgate-{name.rsplit('-', 1)[1]}"
        assert deployment.pull_steps == PULL, name
        assert deployment.job_variables["image"] == "benchgate:latest"
        assert deployment.job_variables["env"] == {"BENCHGATE_STORE": STORE}
    assert deployed["work-pool-kubernetes"].job_variables["namespace"] == "benchgate"
    # the pool's schema is enforced: this is what makes the deploy above a check of the job variables
    problem = asyncio.run(
        _refused(prefect_server, deployed["work-pool-kubernetes"].flow_id, {"finished_job_ttl": "x"})
    )
    assert "finished_job_ttl" in problem, problem
