"""Timeouts under a latency spike: abandoned requests count against concurrency, and are reported.

The server's own count of requests in flight is the judge: `concurrency` is what the server may be
processing for us, so a timed-out attempt must not free its slot while the server may still work on it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from benchgate.errors import ProviderError
from benchgate.evaltasks import make_task
from benchgate.providers.limits import ModelLimiter, limiter_for
from benchgate.report.build import build_report
from benchgate.report.markdown import render_markdown
from benchgate.run.engine import ShardContext, generate_shard
from benchgate.run.evaluation import ExamplesInfo, GenerationStats, score_shard, summarize
from benchgate.spec.example import Example
from benchgate.spec.request import BenchmarkRequest, TaskSpec
from benchgate.store import Store
from tests.support.chat_servers import ChatRequest, ChatServer, Reply


def example(i: int) -> Example:
    return Example(f"q-{i}", [{"role": "user", "content": f"question {i}"}], [f"echo: question {i}"])


def spike(seconds: float, until: float) -> Callable[[ChatRequest], Reply]:
    """A reply function: requests arriving within `until` seconds of the first one take `seconds`."""
    first: list[float] = []

    def reply(request: ChatRequest) -> Reply:
        first[:] = first or [request.received_at]
        slow = request.received_at - first[0] < until
        return Reply(text=f"echo: {request.prompt}", delay=seconds if slow else 0.0)

    return reply


async def test_a_spike_keeps_the_server_at_concurrency_and_the_report_counts_timeouts(
    tmp_path: Path, make: Any
) -> None:
    """Timeout 1 s, a 3 s spike for 2.5 s: the first 8 items time out twice (max_attempts=2) and fail,
    the other 32 wait for slots and succeed; the server never has more than 8 requests at once."""
    examples = [example(i) for i in range(40)]
    with ChatServer(spike(3.0, until=2.5), latency=0.02, stop_on_disconnect=True) as server:
        provider = make(server, concurrency=8, timeout=1.0, max_attempts=2)
        writer = Store(str(tmp_path)).generation_writer(provider.spec.id, "question-answering")
        context = ShardContext("bmk-spike", "question-answering", "ds", "rev", 1, "off")
        outcome = await generate_shard(provider, examples, context, {}, writer)
        writer.close()
    assert server.max_in_flight == 8 and server.count == 48
    failed = [row for row in outcome.rows if row["error"] is not None]
    assert all((row["output"] is None) == (row["error"] is not None) for row in outcome.rows)
    assert len(failed) == 8 and all("timeout after 1s" in row["error"] for row in failed)
    assert {(row["attempts"], row["timeouts"]) for row in failed} == {(2, 2)}
    assert {(row["attempts"], row["timeouts"]) for row in outcome.rows if not row["error"]} == {(1, 0)}

    task = make_task(TaskSpec(task="question-answering", dataset="squad-v2"))
    stats = GenerationStats()
    stats.add(outcome.rows, outcome.requests, outcome.reused)
    scores = score_shard(task, examples, outcome.rows)
    info = ExamplesInfo("d", "ds", "rev", len(examples), 1)
    result = summarize(task, provider.spec, info, scores, stats.as_dict(), error_budget=0.5)
    assert (result.requests, result.attempts, result.timeouts, result.n_errors) == (40, 48, 16, 8)
    p95 = result.latency_ms["p95"]
    assert p95 is not None and p95 < 1000.0  # successful requests alone: the spike is invisible
    assert result.latency_p95_with_timeouts_ms == 1000.0  # 16 of 48 attempts at the 1 s timeout

    request = BenchmarkRequest.model_validate(
        {
            "name": "spike",
            "models": [provider.spec.model_dump()],
            "tasks": [{"task": "question-answering", "dataset": "squad-v2"}],
        }
    )
    report = build_report("bmk-spike", request, [result])
    details = report.to_dict()["details"]["question-answering"][provider.spec.id]
    assert (details["attempts"], details["timeouts"]) == (48, 16)
    assert details["latency_p95_with_timeouts_ms"] == 1000.0
    note = f"- {provider.spec.id}: 16 of 48 attempts timed out; latency p95 1000 ms counting them"
    assert note in render_markdown(report)


async def test_abandoned_requests_the_server_keeps_running_still_hold_their_slots(make: Any) -> None:
    """A server that ignores disconnects finishes the first 8 (1.5 + 0.3 s) after they timed out (1 s);
    retries sent at once would put 16 in flight, so they wait for the ghost slots (1 s more)."""
    with ChatServer(spike(1.5, until=0.5), latency=0.3) as server:
        provider = make(server, concurrency=8, timeout=1.0)
        completions = await asyncio.gather(*(provider.complete(example(i), 0) for i in range(16)))
    assert server.max_in_flight == 8 and server.count == 24
    assert sorted(c.timeouts for c in completions) == [0] * 8 + [1] * 8
    assert sorted(c.attempts for c in completions) == [1] * 8 + [2] * 8


async def test_a_timed_out_attempt_holds_its_slot_for_the_timeout_again(
    server: ChatServer, make: Any
) -> None:
    provider = make(server, concurrency=1, timeout=0.3, max_attempts=1)
    server.enqueue(Reply(delay=1.0))
    with pytest.raises(ProviderError, match=r"timeout after 0\.3s") as caught:
        await provider.complete(example(1), 0)
    assert (caught.value.attempts, caught.value.timeouts) == (1, 1)
    gave_up = time.monotonic()
    assert (await provider.complete(example(2), 0)).text == "echo: question 2"
    assert time.monotonic() - gave_up >= 0.25  # the only slot came back 0.3 s after the timeout


async def test_closing_waits_for_ghost_slots_and_gives_them_back_if_cancelled(
    server: ChatServer, make: Any
) -> None:
    limiters: list[ModelLimiter] = []
    for cancel in (False, True):
        provider = make(server, concurrency=1, timeout=0.3, max_attempts=1)
        server.enqueue(Reply(delay=1.0))
        with pytest.raises(ProviderError):
            await provider.complete(example(1), 0)
        closing = asyncio.create_task(provider.aclose())
        await asyncio.sleep(0.05)
        assert not closing.done()
        if cancel:
            closing.cancel()
        await asyncio.gather(closing, return_exceptions=True)
        limiters.append(limiter_for(provider.spec))
    for limiter in limiters:  # each model's only slot is free again
        await asyncio.wait_for(limiter.acquire(), timeout=0.05)
        limiter.release()
