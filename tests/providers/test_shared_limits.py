"""Limits held by the Prefect server (work-pool runs), and none of it in local mode.

The work-pool end-to-end tests (several processes against one chat server) are
tests/flows/test_work_pool_limits.py and test_work_pool_token_limits.py; here one process shows the
server's limits are the ones enforced, ghost slots included, the token bucket's settling arithmetic,
and that local mode never calls the concurrency API.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from prefect.client.orchestration import PrefectClient, get_client

from benchgate.errors import ProviderError
from benchgate.providers.limits import limits_across_processes
from benchgate.providers.shared_limits import ServerLimiter, shared_limits, upsert_limits
from benchgate.spec.example import Example
from benchgate.spec.request import ModelSpec
from tests.support.arrivals import burst, starts_within
from tests.support.chat_servers import ChatServer, Reply
from tests.support.prefect_workers import SERIAL_WITH_WORKERS

pytestmark = SERIAL_WITH_WORKERS
CONCURRENCY_API = (
    "increment_concurrency_slots",
    "increment_concurrency_slots_with_lease",
    "release_concurrency_slots",
    "release_concurrency_slots_with_lease",
    "create_global_concurrency_limit",
    "upsert_global_concurrency_limit_by_name",
    "read_global_concurrency_limit_by_name",
)


def example(i: int) -> Example:
    return Example(f"q-{i}", [{"role": "user", "content": f"question {i}"}], [f"echo: question {i}"])


def changed(spec: ModelSpec, **fields: Any) -> ModelSpec:
    return ModelSpec.model_validate({**spec.model_dump(), **fields})


def test_the_identity_names_the_limits_not_the_id_params_or_values() -> None:
    spec = ModelSpec(
        id="a", provider="openai-compatible", model="meta-llama/Llama-3", base_url="http://H:8000/v1"
    )
    same = changed(spec, id="b", params={"temperature": 1}, concurrency=3)
    names = shared_limits(spec, "http://H:8000/v1")
    assert shared_limits(same, "http://h:8000/other").concurrency.name == names.concurrency.name
    assert shared_limits(spec, "http://h:8001/v1").concurrency.name != names.concurrency.name
    other_model = changed(spec, model="meta-llama/Llama-4")
    assert shared_limits(other_model, "http://h:8000/v1").concurrency.name != names.concurrency.name
    assert names.requests is None and not any(c in names.concurrency.name for c in "/%&<>")
    paced = shared_limits(changed(spec, rate_limit={"requests_per_minute": 90}), "http://h:8000")
    assert paced.requests is not None and (paced.requests.limit, paced.requests.slot_decay_per_second) == (
        1,
        1.5,
    )


async def test_local_mode_makes_no_prefect_concurrency_api_calls(
    monkeypatch: pytest.MonkeyPatch, make: Any
) -> None:
    calls: list[str] = []
    for name in CONCURRENCY_API:

        async def record(*args: Any, _name: str = name, **kwargs: Any) -> Any:
            calls.append(_name)
            raise AssertionError(f"{_name} called in local mode")

        monkeypatch.setattr(PrefectClient, name, record)
    with ChatServer(latency=0.01) as server:
        provider = make(server, concurrency=2, rate_limit={"requests_per_minute": 6000})
        server.enqueue(Reply(status=503))  # a retry, too
        answers = await asyncio.gather(*(provider.complete(example(i), 0) for i in range(12)))
    assert [a.text for a in answers] == [f"echo: question {i}" for i in range(12)]
    assert server.count == 13 and calls == []


async def test_the_servers_limits_hold_when_stricter_than_the_process(prefect_api: str, make: Any) -> None:
    """Local concurrency 4 and 600 rpm; the server says 2 and 120 (another process, or a later request):
    the chat server never sees more than 2 at once, nor two starts closer than 0.5 s."""
    with ChatServer(latency=0.3) as server:
        with limits_across_processes():
            provider = make(server, concurrency=4, rate_limit={"requests_per_minute": 600})
        strict = changed(provider.spec, concurrency=2, rate_limit={"requests_per_minute": 120})
        async with get_client() as client:
            await upsert_limits(client, [shared_limits(strict, provider.base_url)])
        await asyncio.gather(*(provider.complete(example(i), 0) for i in range(8)))
    arrivals = [r.received_at for r in server.requests]
    assert server.count == 8 and server.max_in_flight <= 2
    assert starts_within(arrivals, 0.45) == 1, sorted(arrivals)


async def test_a_process_that_keeps_the_slots_busy_lets_a_waiting_process_take_its_turn(
    prefect_api: str, make: Any
) -> None:
    """One slot; two providers of the model with limiters of their own (as two processes have). The
    first has 12 items of 0.3 s; the second asks once the first holds the slot. The server keeps no
    queue: the first asked again as soon as it gave the slot back and always won, so the second
    waited for all 12 (3.3 s more). Now it is sent after at most one of the first's items and a pause."""
    with ChatServer(latency=0.3) as server:
        with limits_across_processes():
            busy, waiting = make(server, concurrency=1), make(server, concurrency=1)
        first = asyncio.gather(*(busy.complete(example(i), 0) for i in range(12)))
        while server.count < 1:
            await asyncio.sleep(0.01)
        asked = time.monotonic()
        answer = await waiting.complete(example(100), 0)
        waited = time.monotonic() - asked
        busy_answers = await first
    assert answer.text == "echo: question 100" and len(busy_answers) == 12
    assert server.count == 13 and server.max_in_flight == 1
    assert waited < 2.0, waited
    async with get_client() as client:
        name = shared_limits(busy.spec, busy.base_url).waiting.name
        assert (await client.read_global_concurrency_limit_by_name(name)).active_slots == 0, "mark cleared"


async def test_a_timed_out_attempt_holds_its_server_slot_another_timeout(prefect_api: str, make: Any) -> None:
    with ChatServer(reply=lambda request: Reply(text="late", delay=3.0)) as server:
        with limits_across_processes():
            provider = make(server, concurrency=2, timeout=1.0, max_attempts=1)
        name = shared_limits(provider.spec, provider.base_url).concurrency.name
        with pytest.raises(ProviderError, match="timeout"):
            await provider.complete(example(0), 0)
        async with get_client() as client:
            assert (await client.read_global_concurrency_limit_by_name(name)).active_slots == 1  # the ghost
            await provider.aclose()  # waits the ghost out, then gives the slot back
            assert (await client.read_global_concurrency_limit_by_name(name)).active_slots == 0


def test_the_token_bucket_holds_a_twentieth_and_refills_to_tokens_per_minute() -> None:
    spec = ModelSpec(id="a", provider="openai-compatible", model="m", base_url="http://h/v1")
    tokens = shared_limits(changed(spec, rate_limit={"tokens_per_minute": 6000}), "http://h/v1").tokens
    assert tokens is not None and tokens.name.endswith(":tokens")
    assert (tokens.limit, tokens.slot_decay_per_second) == (300, 95.0)  # 300 + 95 x 60 = 6,000 a minute
    assert shared_limits(spec, "http://h/v1").tokens is None
    tiny = shared_limits(changed(spec, rate_limit={"tokens_per_minute": 10}), "http://h/v1").tokens
    assert tiny is not None and tiny.limit == 1 and tiny.slot_decay_per_second > 0


def token_limiter(tokens_per_minute: float) -> ServerLimiter:
    """A limiter of a model no other test uses, so its limits start empty on the session's server."""
    spec = ModelSpec(
        id="t",
        provider="openai-compatible",
        model=f"tokens-{uuid.uuid4().hex[:8]}",
        base_url="http://127.0.0.1:9/v1",
        rate_limit={"tokens_per_minute": tokens_per_minute},
    )
    return ServerLimiter(spec, spec.base_url or "")


async def bucket_level(limiter: ServerLimiter) -> int:
    assert limiter.limits.tokens is not None
    async with get_client() as client:
        return (await client.read_global_concurrency_limit_by_name(limiter.limits.tokens.name)).active_slots


async def test_tokens_settle_against_the_server_credit_first_debt_before_the_next_request(
    prefect_api: str,
) -> None:
    """The server holds (1000, 0.01/s), not the request's values: nothing drains during the test, so
    the bucket's level is exactly what was taken."""
    limiter = token_limiter(60_000)
    assert limiter.limits.tokens is not None
    async with get_client() as client:
        await client.upsert_global_concurrency_limit_by_name(limiter.limits.tokens.name, 1000, 0.01)
    levels = []
    for estimate, used in ((300, 100), (250, 400), (100, 100), (120.5, 20)):
        await limiter.pace(estimate)
        levels.append(await bucket_level(limiter))
        limiter.settle(used)
    # 300; 250 paid by the 200 over-estimated, so +50; 100 plus the 150 under-estimated; 121, exact
    assert levels == [300, 350, 600, 721]
    await limiter.aclose()  # gives back the last 101 tokens over-estimated
    assert await bucket_level(limiter) == 620 == 100 + 400 + 100 + 20


async def test_an_estimate_beyond_the_bucket_fills_it_and_its_usage_is_taken_by_close(
    prefect_api: str,
) -> None:
    """tpm 600,000: a bucket of 30,000 tokens draining 9,500 a second. A request estimated at 100,000
    goes at once, filling the bucket; it used 80,000, so closing takes 50,000 more, in two chunks the
    bucket can hold: the last one once 30,000 + 20,000 tokens have drained, 5.3 s after the request."""
    limiter = token_limiter(600_000)
    started = time.monotonic()
    await limiter.pace(100_000)
    assert 15_000 < await bucket_level(limiter) <= 30_000  # full, and draining since
    limiter.settle(80_000)
    await limiter.aclose()
    elapsed = time.monotonic() - started
    print(f"80,000 tokens used taken in {elapsed:.1f} s")
    assert 50_000 / 9_500 - 0.2 < elapsed < 20, elapsed


async def test_two_instances_stay_within_the_token_bucket_only_through_the_server(
    prefect_api: str, make: Any
) -> None:
    """Two providers of one model with limiters of their own (as two processes have), 6,000 tokens a
    minute, 20 requests of 20 tokens each (estimated 23): each paces itself at 100 tokens a second, so
    together they send twice that; with the server's bucket (300 tokens, 95 a second) they stay in it,
    at its rate: (800 - 300) / 95 = 5.3 s."""
    used = 20
    seen: dict[str, list[tuple[float, int]]] = {}
    with ChatServer(reply=lambda request: Reply(text="ok", input_tokens=10, output_tokens=10)) as server:
        for mode in ("per process", "server"):
            server.reset()
            fields = {
                "rate_limit": {"tokens_per_minute": 6000},
                "params": {"max_tokens": 20},
                "concurrency": 64,  # slots for all: only tokens bind
            }
            if mode == "server":
                with limits_across_processes():
                    providers = [make(server, **fields) for _ in range(2)]
            else:
                providers = [make(server, **fields) for _ in range(2)]
            started = time.monotonic()
            await asyncio.gather(*(p.complete(example(i), 0) for p in providers for i in range(20)))
            await asyncio.gather(*(p.aclose() for p in providers))  # credit given back
            seen[mode] = [(r.received_at, used) for r in server.requests]
            print(f"{mode}: {time.monotonic() - started:.1f} s, burst {burst(seen[mode], 95.0):.0f} tokens")
    tokens = shared_limits(providers[0].spec, providers[0].base_url).tokens
    assert tokens is not None and (tokens.limit, tokens.slot_decay_per_second) == (300, 95.0)
    assert all(len(arrivals) == 40 for arrivals in seen.values())
    assert burst(seen["per process"], 95.0) > 1.2 * tokens.limit
    assert burst(seen["server"], 95.0) <= tokens.limit + 95.0 * 0.25  # a late send, as in the pool tests
    async with get_client() as client:
        assert (await client.read_global_concurrency_limit_by_name(tokens.name)).active_slots <= tokens.limit
