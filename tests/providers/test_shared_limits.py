"""Limits held by the Prefect server (work-pool runs), and none of it in local mode.

The work-pool end-to-end test (several processes against one chat server) is
tests/flows/test_work_pool_limits.py; here one process shows the server's limits are the ones
enforced, ghost slots included, and that local mode never calls the concurrency API.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prefect.client.orchestration import PrefectClient, get_client

from benchgate.errors import ProviderError
from benchgate.providers.shared_limits import limits_across_processes, shared_limits, upsert_limits
from benchgate.spec.example import Example
from benchgate.spec.request import ModelSpec
from tests.support.chat_servers import ChatServer, Reply

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


def starts_within(times: list[float], window: float) -> int:
    """The most request arrivals in any `window` seconds."""
    times = sorted(times)
    return max(sum(1 for t in times[i:] if t < start + window) for i, start in enumerate(times))


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
