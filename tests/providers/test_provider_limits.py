"""The per-model limiter: FIFO slots shared across loops and threads, and smooth rate pacing."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from benchgate.providers.limits import ModelLimiter, limiter_for
from benchgate.spec.request import ModelSpec


def test_one_limiter_per_model_id_and_limits():
    spec = ModelSpec(
        id="shared-model", provider="openai-compatible", base_url="http://127.0.0.1:1", concurrency=3
    )
    assert limiter_for(spec) is limiter_for(spec.model_copy())
    other = spec.model_copy(update={"id": "another-model"})
    assert limiter_for(other) is not limiter_for(spec)
    reconfigured = spec.model_copy(update={"concurrency": 5})
    assert limiter_for(reconfigured).concurrency == 5


async def _hold(limiter: ModelLimiter, seconds: float, counter: dict[str, int], lock: threading.Lock) -> None:
    await limiter.acquire()
    with lock:
        counter["now"] += 1
        counter["max"] = max(counter["max"], counter["now"])
    try:
        await asyncio.sleep(seconds)
    finally:
        with lock:
            counter["now"] -= 1
        limiter.release()


def test_slots_are_shared_by_event_loops_in_several_threads():
    limiter = ModelLimiter(concurrency=4)
    counter = {"now": 0, "max": 0}
    lock = threading.Lock()

    def run() -> None:
        async def many() -> None:
            await asyncio.gather(*(_hold(limiter, 0.01, counter, lock) for _ in range(20)))

        asyncio.run(many())

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter["max"] == 4
    assert limiter._free == 4 and not limiter._waiters


async def test_cancelled_waiters_do_not_leak_slots():
    limiter = ModelLimiter(concurrency=1)
    await limiter.acquire()
    waiters = [asyncio.create_task(limiter.acquire()) for _ in range(5)]
    await asyncio.sleep(0)
    limiter.release()  # hands the slot to waiters[0] ...
    for waiter in waiters:
        waiter.cancel()  # ... which is cancelled before it runs
    await asyncio.gather(*waiters, return_exceptions=True)
    await asyncio.sleep(0)
    assert limiter._free == 1 and not limiter._waiters
    await asyncio.wait_for(limiter.acquire(), timeout=1)


async def test_retries_go_to_the_head_of_the_queue():
    limiter = ModelLimiter(concurrency=1)
    await limiter.acquire()
    order: list[str] = []

    async def take(name: str, first: bool) -> None:
        await limiter.acquire(first=first)
        order.append(name)
        limiter.release()

    waiting = [asyncio.create_task(take(f"new-{i}", False)) for i in range(3)]
    await asyncio.sleep(0)
    waiting.append(asyncio.create_task(take("retry", True)))
    await asyncio.sleep(0)
    limiter.release()
    await asyncio.gather(*waiting)
    assert order == ["retry", "new-0", "new-1", "new-2"]


def test_requests_per_minute_are_spaced_not_burst():
    limiter = ModelLimiter(concurrency=100, requests_per_minute=120)  # one every 0.5 s
    delays = [limiter.reserve(0) for _ in range(4)]
    assert delays[0] == 0
    assert delays[1:] == pytest.approx([0.5, 1.0, 1.5], abs=0.01)


def test_tokens_per_minute_pace_by_size_and_settle_with_usage():
    limiter = ModelLimiter(concurrency=100, tokens_per_minute=60_000)  # 1,000 tokens per second
    assert limiter.reserve(2_000) == 0
    assert limiter.reserve(500) == pytest.approx(2.0, abs=0.01)
    limiter.settle(estimated=500, actual=100)  # the answer was shorter than max_tokens
    assert limiter.reserve(0) == pytest.approx(2.1, abs=0.01)


async def test_rate_wait_is_real_time():
    limiter = ModelLimiter(concurrency=10, requests_per_minute=1200)  # one every 50 ms
    started = time.monotonic()
    await asyncio.gather(*(limiter.wait_for_rate(0) for _ in range(5)))
    assert 0.19 <= time.monotonic() - started < 0.5
