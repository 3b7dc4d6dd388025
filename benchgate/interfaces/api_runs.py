"""Bookkeeping of benchmarks submitted over HTTP, and the two ways they run.

The store is the record: a submission file per benchmark under `api/submissions/`, and the report
under `reports/<id>/` (status queued, then the flow's running, completed or failed). Runners only start
work and, when asked, say whether a run died without writing its report.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from benchgate.report.build import skeleton_report
from benchgate.store import Store

ID_PATTERN = r"^bmk-[0-9a-f]{12}$"
_ID = re.compile(ID_PATTERN)
UNFINISHED = ("queued", "running")
logger = logging.getLogger(__name__)


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Runner(Protocol):
    mode: str

    async def start(self, benchmark_id: str, request: dict[str, Any], store_url: str) -> dict[str, Any]:
        """Start the run; returns what to remember about it (e.g. the flow run id)."""
        ...

    async def died(self, submission: dict[str, Any]) -> str | None:
        """Why the run ended without a final report, or None while it may still write one."""
        ...


@dataclass
class Submissions:
    store: Store

    def _path(self, benchmark_id: str) -> str:
        if not _ID.match(benchmark_id):  # never let a caller's string become a store path
            raise ValueError(f"invalid benchmark id {benchmark_id!r}")
        return self.store.path("api", "submissions", f"{benchmark_id}.json")

    def record(self, benchmark_id: str, name: str, info: dict[str, Any]) -> dict[str, Any]:
        submission = {"benchmarkId": benchmark_id, "name": name, "submittedAt": now(), **info}
        self.store.write_bytes(self._path(benchmark_id), json.dumps(submission).encode())
        return submission

    def read(self, benchmark_id: str) -> dict[str, Any] | None:
        path = self._path(benchmark_id)
        return json.loads(self.store.read_bytes(path)) if self.store.exists(path) else None

    def recent(self, limit: int) -> list[dict[str, Any]]:
        directory = self.store.path("api", "submissions")
        if not self.store.exists(directory):
            return []
        paths = [p for p in self.store.fs.ls(directory, detail=False) if p.endswith(".json")]
        items = []
        for path in paths:
            try:
                item = json.loads(self.store.read_bytes(path))
            except (OSError, ValueError):  # half-written or garbled by hand: skip it, keep the rest
                continue
            if isinstance(item, dict) and isinstance(item.get("submittedAt"), str) and "benchmarkId" in item:
                items.append(item)
        return sorted(items, key=lambda s: s["submittedAt"], reverse=True)[:limit]

    def mark_queued(self, benchmark_id: str, name: str) -> None:
        report = skeleton_report(benchmark_id, name, "queued")
        self.store.write_bytes(
            self.store.report_path(benchmark_id, "report.json"), json.dumps(report).encode()
        )

    def mark_failed(self, benchmark_id: str, name: str, error: str) -> dict[str, Any]:
        report = {**skeleton_report(benchmark_id, name, "failed"), "error": error, "completedAt": now()}
        self.store.write_bytes(
            self.store.report_path(benchmark_id, "report.json"), json.dumps(report).encode()
        )
        return report


@dataclass
class ProcessPoolRunner:
    """Runs each benchmark flow in a process of the API's own pool, off the event loop.

    `target(request, benchmark_id, store_url)` runs in the child; it is injected because only the
    interface layer may import the flows.
    """

    executor: Executor
    target: Callable[[dict[str, Any], str, str], int]
    submissions: Submissions
    mode: str = "process-pool"
    _running: dict[str, asyncio.Future[int]] = field(default_factory=dict)

    async def start(self, benchmark_id: str, request: dict[str, Any], store_url: str) -> dict[str, Any]:
        future = asyncio.get_running_loop().run_in_executor(
            self.executor, self.target, request, benchmark_id, store_url
        )
        self._running[benchmark_id] = future
        future.add_done_callback(lambda f: self._finished(benchmark_id, request.get("name", ""), f))
        return {}

    def _finished(self, benchmark_id: str, name: str, future: asyncio.Future[int]) -> None:
        self._running.pop(benchmark_id, None)
        if future.cancelled():
            error = "cancelled"
        elif future.exception() is not None:
            error = f"{type(future.exception()).__name__}: {future.exception()}"
        else:
            return
        logger.error("benchmark %s: %s", benchmark_id, error)
        self.submissions.mark_failed(benchmark_id, name, error)

    async def died(self, submission: dict[str, Any]) -> str | None:
        if submission["benchmarkId"] in self._running:
            return None
        return "the API process that ran it stopped before it finished"


@dataclass
class DeploymentRunner:
    """Runs each benchmark as a flow run of a Prefect deployment, picked up by a worker."""

    deployment: str
    mode: str = "deployment"

    async def start(self, benchmark_id: str, request: dict[str, Any], store_url: str) -> dict[str, Any]:
        from prefect.deployments import arun_deployment

        parameters = {"request": request, "benchmark_id": benchmark_id, "store_url": store_url}
        run = await arun_deployment(self.deployment, parameters=parameters, timeout=0, as_subflow=False)
        return {"flowRunId": str(run.id), "deployment": self.deployment}

    async def died(self, submission: dict[str, Any]) -> str | None:
        from prefect.client.orchestration import get_client

        async with get_client() as client:
            run = await client.read_flow_run(submission["flowRunId"])
        state = run.state
        if state is None or not state.is_final() or state.is_completed():
            return None  # a completed run has written its report; the store is read again next time
        return f"flow run {run.name} ended {state.name}: {state.message or ''}".strip()
