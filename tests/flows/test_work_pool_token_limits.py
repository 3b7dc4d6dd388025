"""A model's tokens_per_minute holds for the whole benchmark on a work pool.

One model on two tasks runs as two lanes, in two processes on two workers, each pacing its own tokens
at the full rate; the chat server reports each request's usage, and the tokens it received must fit the
server-held bucket (benchgate/providers/shared_limits.py): in any window of W seconds at most
B + r W, B = tpm/20 and r = (tpm - B)/60, so never more than tpm in any minute. Each request uses 5
tokens less than estimated, so settling's credit runs across processes too. The settling arithmetic,
and what two per-process limiters alone let through (twice the rate), are in
tests/providers/test_shared_limits.py.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from benchgate.providers.shared_limits import shared_limits
from benchgate.spec.request import ModelSpec
from tests.conftest import Machine, cli_env, run_cli
from tests.support.arrivals import burst
from tests.support.chat_servers import ChatRequest, ChatServer, Reply
from tests.support.prefect_server import PrefectServer
from tests.support.prefect_workers import Worker, deploy_worker_entry, support_tasks
from tests.support.processes import outputs

pytestmark = [pytest.mark.slow, pytest.mark.alone]  # asserts its processes overlapped in time

POOL = "benchgate-test-tokens"
DEPLOYMENT = "evaluate/tokens-test"
# A bucket of 300 tokens draining 95 a second. Each request uses 5 tokens less than estimated (prompt
# characters / 4 + max_tokens), about 47: 2 x 16 requests, ~1,500 tokens, (1,500 - 300) / 95 = 13 s
# together, while each process alone paces itself at 100 a second, twice the bucket's rate together.
# On the PostgreSQL-backed server: on SQLite, two lanes creating their subflows at once get 503s, and
# Prefect's client retries 2, 4 then 8 s later (CI saw the second lane start 14 s late, after the first
# had ended).
TPM, MAX_TOKENS, ITEMS = 6000, 40, 16
BUCKET, RATE = 300, 95.0
JITTER = 0.25  # how late a paced send may reach the chat server when loaded (as in test_work_pool_limits)


def used_tokens(request: ChatRequest) -> int:
    return sum(len(m["content"]) for m in request.messages) // 4 + MAX_TOKENS - 5


def answer(request: ChatRequest) -> Reply:
    used = used_tokens(request)
    return Reply(text="no idea", input_tokens=used // 2, output_tokens=used - used // 2)


def tokens_request(base_url: str) -> dict[str, Any]:
    model = {
        "id": "metered",
        "provider": "openai-compatible",
        "model": "metered-model",
        "base_url": base_url,
        "concurrency": 32,  # slots for all: only tokens bind
        "params": {"max_tokens": MAX_TOKENS},
        "rate_limit": {"tokens_per_minute": TPM},
    }
    return {
        "name": "Shared token limit",
        "execution": "work-pool",
        "models": [model],
        "tasks": support_tasks("ab", "answer", ITEMS),
    }


async def bucket_on_server(server: PrefectServer, name: str) -> tuple[int, float, int]:
    from prefect.client.orchestration import PrefectClient

    async with PrefectClient(server.api_url) as client:
        found = await client.read_global_concurrency_limit_by_name(name)
    return found.limit, found.slot_decay_per_second, found.active_slots


def test_two_processes_of_one_model_stay_within_its_token_bucket(
    prefect_server_postgres: PrefectServer, tmp_path: Path, machine: Machine
) -> None:
    store = tmp_path / "shared-store"
    deploy_worker_entry(prefect_server_postgres, POOL, DEPLOYMENT)
    workers = [
        Worker(prefect_server_postgres, POOL, f"tokens-{i}", store, 1, tmp_path / f"worker-{i}.log")
        for i in (1, 2)
    ]
    try:
        for worker in workers:
            worker.wait_started()
        with ChatServer(reply=answer) as chat:
            path = tmp_path / "request.yaml"
            path.write_text(yaml.safe_dump(tokens_request(chat.url + "/v1")))
            env = cli_env(prefect_server_postgres, store, BENCHGATE_EVALUATE_DEPLOYMENT=DEPLOYMENT)
            started = time.monotonic()
            result = run_cli(["run", str(path), "--out", str(tmp_path / "out")], env, timeout=300)
            took = time.monotonic() - started
            assert result.returncode == 0, outputs(result)
            received = list(chat.requests)
    finally:
        for worker in workers:
            worker.stop()
    machine.share()  # what follows is counting, not timing

    assert len(received) == 2 * ITEMS
    arrivals = [(r.received_at, used_tokens(r)) for r in received]
    total = sum(tokens for _, tokens in arrivals)
    span = max(t for t, _ in arrivals) - min(t for t, _ in arrivals)
    over = burst(arrivals, RATE)
    print(
        f"benchmark {took:.1f} s; {total} tokens in {span:.1f} s; beyond the refill in a window: {over:.0f}"
    )
    assert over <= BUCKET + RATE * JITTER, over
    # The two lanes really sent at the same time (else one process's own pacing would have done).
    spans = sorted(
        (
            min(r.received_at for r in received if r.prompt.startswith(p)),
            max(r.received_at for r in received if r.prompt.startswith(p)),
        )
        for p in ("a:", "b:")
    )
    print("lanes sent during", [(round(a - spans[0][0], 1), round(b - spans[0][0], 1)) for a, b in spans])
    assert any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans)), spans

    spec = ModelSpec.model_validate(tokens_request(chat.url + "/v1")["models"][0])
    tokens = shared_limits(spec, chat.url + "/v1").tokens
    assert tokens is not None
    limit, decay, level = asyncio.run(bucket_on_server(prefect_server_postgres, tokens.name))
    assert (limit, decay) == (BUCKET, RATE) and level <= BUCKET
