"""A model's concurrency and rate limits hold for the whole benchmark on a work pool.

One model on three tasks runs as three flow runs, in three processes on two workers; the chat
server, which counts what it is processing, must never see more than the model's `concurrency` at
once nor more of its requests than `requests_per_minute` allows, and the report equals local mode's.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from benchgate.providers.shared_limits import shared_limits
from benchgate.spec.request import ModelSpec
from tests.conftest import Machine, cli_env, run_cli
from tests.support.arrivals import starts_within
from tests.support.chat_servers import ChatRequest, ChatServer
from tests.support.prefect_server import PrefectServer
from tests.support.prefect_workers import Worker, deploy_worker_entry, support_tasks
from tests.support.processes import outputs

pytestmark = [pytest.mark.slow, pytest.mark.alone]  # asserts its processes overlapped in time

POOL = "benchgate-test-limits"
DEPLOYMENT = "evaluate/limits-test"
CONCURRENCY, RPM, LATENCY, ITEMS = 2, 180, 0.6, 16  # both limits bind: 2 / 0.6 s ~ 180 / 60 s
# 16 items (all the file has) keep each subflow busy past the spread of worker process start-ups.
# How late a paced start may reach the chat server: a busy event loop sends some requests late and the
# next on time (seen: 0.25 s on a loaded 2-core machine). Three processes pacing on their own would
# still be caught: 7 starts in 0.7 s, against at least 2 s - JITTER.
JITTER = 0.25


def answer(request: ChatRequest) -> str:
    """Correct for half the items, so the metrics are not trivially equal."""
    return request.prompt.split(": ", 1)[1] if len(request.prompt) % 2 else "no idea"


def limits_request(execution: str, base_url: str) -> dict[str, Any]:
    model = {
        "id": "paced",
        "provider": "openai-compatible",
        "model": "paced-model",
        "base_url": base_url,
        "concurrency": CONCURRENCY,
        "rate_limit": {"requests_per_minute": RPM},
    }
    return {
        "name": "Shared limits",
        "execution": execution,
        "models": [model],
        "tasks": support_tasks("abc", "question", ITEMS),
    }


def paced(arrivals: list[float], rpm: float) -> list[tuple[int, float]]:
    """(requests, seconds) spans that came faster than rpm allows, beyond JITTER; [] if none."""
    arrivals, spacing = sorted(arrivals), 60.0 / rpm
    return [
        (j - i, round(arrivals[j] - arrivals[i], 3))
        for i in range(len(arrivals))
        for j in range(i + 1, len(arrivals))
        if arrivals[j] - arrivals[i] < (j - i) * spacing - JITTER
    ]


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    return {
        task: {m: {k: d[k] for k in ("n", "n_items", "n_errors", "metrics")} for m, d in models.items()}
        for task, models in report["details"].items()
    }


async def server_limits(server: PrefectServer, names: list[str]) -> list[tuple[int, float]]:
    from prefect.client.orchestration import PrefectClient

    async with PrefectClient(server.api_url) as client:
        found = [await client.read_global_concurrency_limit_by_name(name) for name in names]
    return [(limit.limit, limit.slot_decay_per_second) for limit in found]


def run_limited(
    chat: ChatServer, execution: str, server: PrefectServer, store: Path, out: Path
) -> list[ChatRequest]:
    """The request in `execution` mode; what the chat server received."""
    chat.reset()
    path = out.with_suffix(".yaml")
    path.write_text(yaml.safe_dump(limits_request(execution, chat.url + "/v1")))
    env = cli_env(server, store, BENCHGATE_EVALUATE_DEPLOYMENT=DEPLOYMENT)
    started = time.monotonic()
    result = run_cli(["run", str(path), "--out", str(out)], env, timeout=300)
    print(f"{execution}: {time.monotonic() - started:.1f} s, {chat.stats()}")
    assert result.returncode == 0, outputs(result)
    assert chat.max_in_flight <= CONCURRENCY, (execution, chat.stats())
    return list(chat.requests)


def test_three_processes_of_one_model_stay_within_its_limits(
    prefect_server: PrefectServer, tmp_path: Path, machine: Machine
) -> None:
    deploy_worker_entry(prefect_server, POOL, DEPLOYMENT)
    workers = [
        Worker(
            prefect_server, POOL, f"limits-{i}", tmp_path / "shared-store", 2, tmp_path / f"worker-{i}.log"
        )
        for i in (1, 2)
    ]
    with ChatServer(reply=answer, latency=LATENCY) as chat:
        try:
            for worker in workers:
                worker.wait_started()
            remote = run_limited(
                chat, "work-pool", prefect_server, tmp_path / "shared-store", tmp_path / "work-pool"
            )
        finally:
            for worker in workers:
                worker.stop()
        machine.share()  # only the work-pool run's timing needed the machine to itself
        run_limited(chat, "local", prefect_server, tmp_path / "local-store", tmp_path / "local")

    assert len(remote) == 3 * ITEMS
    times = [r.received_at for r in remote]
    assert paced(times, RPM) == []
    assert starts_within(times, 60.0) <= RPM
    # The three subflows really ran at the same time (else one process's limits would have done).
    spans = sorted(
        (
            min(r.received_at for r in remote if r.prompt.startswith(p)),
            max(r.received_at for r in remote if r.prompt.startswith(p)),
        )
        for p in ("a:", "b:", "c:")
    )
    assert any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans)), spans

    spec = ModelSpec.model_validate(limits_request("work-pool", chat.url + "/v1")["models"][0])
    limits = shared_limits(spec, chat.url + "/v1")
    assert limits.requests is not None
    names = [limits.concurrency.name, limits.requests.name]
    assert asyncio.run(server_limits(prefect_server, names)) == [(CONCURRENCY, 0.0), (1, RPM / 60.0)]

    remote_report = json.loads((tmp_path / "work-pool" / "report.json").read_text())
    local_report = json.loads((tmp_path / "local" / "report.json").read_text())
    assert comparable(remote_report) == comparable(local_report)
    assert {d["n"] for models in remote_report["details"].values() for d in models.values()} == {ITEMS}
