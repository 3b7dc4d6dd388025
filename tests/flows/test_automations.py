"""deployments/automations.yaml on a real server: a nightly run whose gate fails ends Failed and the
automation calls the Webhook block's URL (a receiver on 127.0.0.1) with the run's name and message.

The nightly run is created from the deployment `prefect deploy` makes of prefect.yaml and executed with
`prefect flow-run execute`, the command a process worker runs, so the events are those of production.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployments.automations import apply_automations
from tests.conftest import REPO_ROOT
from tests.support.prefect_server import PrefectServer
from tests.support.prefect_workers import SERIAL_WITH_WORKERS, ensure_pool, prefect_cli, wait_for

pytestmark = [pytest.mark.slow, SERIAL_WITH_WORKERS]

DATA = REPO_ROOT / "benchgate" / "data"


class Receiver:
    """A webhook endpoint on 127.0.0.1 that keeps every body it is sent."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                bodies.append(self.rfile.read(int(self.headers["content-length"])))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    try:
        yield server
    finally:
        server.close()


def failing_request() -> dict[str, Any]:
    return {
        "name": "Automation",
        "models": [{"id": "baseline", "provider": "builtin", "model": "baseline"}],
        "tasks": [
            {
                "task": "question-answering",
                "dataset": "squad-v2",
                "path": str(DATA / "squad_v2_sample.json"),
                "limit": 4,
            }
        ],
        "gate": {
            "rules": [
                {"model": "baseline", "task": "question-answering", "metric": "f1-score", "at_least": 99.9}
            ]
        },
    }


async def _create_block_and_automations(url: str) -> list[Any]:
    from prefect.blocks.webhook import Webhook
    from prefect.client.orchestration import get_client

    await Webhook(url=url, allow_private_urls=True).save("benchgate-alerts", overwrite=True)
    async with get_client() as client:
        created = await apply_automations(client)
        again = await apply_automations(client)  # replaced, not duplicated
        assert list(again) == list(created) == ["benchgate-run-failed"]
        return await client.read_automations_by_name("benchgate-run-failed")


async def _delete_automations() -> None:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        for automation in await client.read_automations_by_name("benchgate-run-failed"):
            await client.delete_automation(automation.id)


async def _create_nightly_run(request_path: Path, store: Path) -> str:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        deployment = await client.read_deployment_by_name("benchmark/nightly")
        parameters = {"request_path": str(request_path), "store_url": str(store)}
        run = await client.create_flow_run_from_deployment(deployment.id, parameters=parameters)
        return str(run.id)


def test_a_failed_gate_on_the_nightly_deployment_calls_the_webhook(
    prefect_server: PrefectServer, prefect_api: str, receiver: Receiver, tmp_path: Path
) -> None:
    automations = asyncio.run(_create_block_and_automations(receiver.url))
    try:
        assert len(automations) == 1
        ensure_pool(prefect_server, "benchgate")
        prefect_cli(prefect_server, "deploy", "--name", "nightly")
        request_path = tmp_path / "nightly.yaml"
        request_path.write_text(yaml.safe_dump(failing_request()))
        flow_run_id = asyncio.run(_create_nightly_run(request_path, tmp_path / "store"))
        execute = subprocess.run(  # exits non-zero for a Failed run: the receiver is what is checked
            [sys.executable, "-m", "prefect", "flow-run", "execute", flow_run_id],
            env={**os.environ, **prefect_server.env()},
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        bodies = wait_for(lambda: list(receiver.bodies), 90, "the webhook call", poll=0.5)
    finally:
        asyncio.run(_delete_automations())
    assert len(bodies) == 1, bodies
    alert = json.loads(bodies[0])
    assert alert["deployment"] == "nightly", alert
    assert alert["state"] == "Failed", (alert, execute.stdout[-2000:], execute.stderr[-2000:])
    assert alert["flow_run"] == f"nightly · {request_path}"
    assert "the gate failed (exit 1)" in alert["message"], alert
