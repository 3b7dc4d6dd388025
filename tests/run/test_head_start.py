"""`benchgate run` starts the first models x tasks generating before its flow; their subflows adopt them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from benchgate.errors import DatasetError
from benchgate.run.engine import ShardGenerations
from benchgate.run.generation import Generation, HeadStartFailed, adopt_head_start, head_starts
from benchgate.spec.request import BenchmarkRequest
from benchgate.store import Store
from tests.support.chat_servers import ChatServer


def request(
    tmp_path: Path, url: str, models: list[str], tasks: list[str], n: int, **extra: Any
) -> BenchmarkRequest:
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps({"id": str(i), "q": f"q{i}", "a": f"a{i}"}) + "\n" for i in range(n)))
    return BenchmarkRequest.model_validate(
        {
            "name": "head start",
            "models": [
                {"id": m, "provider": "openai-compatible", "base_url": url + "/v1", "concurrency": 2}
                for m in models
            ],
            "tasks": [
                {
                    "task": t,
                    "dataset": str(items),
                    "id_field": "id",
                    "prompt": "{{ q }}",
                    "target": "a",
                    "metrics": ["exact-match"],
                }
                for t in tasks
            ],
            **extra,
        }
    )


async def take_all(generation: Generation) -> list[ShardGenerations]:
    """What a subflow's shard tasks do with an adopted generation: take every shard, then close it."""
    taken = [await generation.producer.take(shard) for shard in range(len(generation.shards))]
    await generation.aclose()
    return taken


async def until(condition: Any, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_a_head_start_generates_before_the_flow_and_its_subflow_adopts_it_once(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "store"))
    with ChatServer(latency=0.02) as chat:
        parsed = request(tmp_path, chat.url, ["m"], ["t"], 30)
        async with head_starts(parsed, "bmk-1", store, at_once=4):
            await until(lambda: chat.count >= 4)  # nothing has adopted it: the command's head start
            generation = await adopt_head_start("bmk-1", "m", "t")
            assert isinstance(generation, Generation)
            assert await adopt_head_start("bmk-1", "m", "t") is None, "adopted once"
            taken = await take_all(generation)
    rows = [row for shard in taken for row in shard.rows]
    assert sorted(row["example_id"] for row in rows) == sorted(str(i) for i in range(30))
    assert all(row["output"] and row["benchmark_id"] == "bmk-1" for row in rows)
    assert chat.count == 30, "the subflow generated nothing the head start had not"


async def test_a_head_start_never_adopted_is_closed_and_keeps_its_finished_answers(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "store"))
    with ChatServer(latency=0.1) as chat:
        parsed = request(tmp_path, chat.url, ["m"], ["t"], 200)
        async with head_starts(parsed, "bmk-1", store, at_once=4):
            await until(lambda: chat.count >= 10)  # then the flow fails before its subflow starts
        asked = chat.count
        await asyncio.sleep(0.3)
        assert chat.count == asked, "requests went on after the run gave up"
    kept = store.reusable_generations("m", "t")
    assert asked - 2 <= len(kept) <= asked < 200  # what was answered, not the 2 in flight
    async with asyncio.timeout(1):  # the model x task's lock is free for the next run
        async with store.exclusive("generations", "model=m", "task=t"):
            pass


async def test_only_the_units_the_flow_starts_first_get_a_head_start(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "store"))
    with ChatServer(latency=0.01) as chat:
        parsed = request(tmp_path, chat.url, ["a", "b"], ["t1", "t2"], 3)
        assert parsed.units() == [("a", "t1"), ("b", "t1"), ("a", "t2"), ("b", "t2")]
        async with head_starts(parsed, "bmk-1", store, at_once=2):
            assert await adopt_head_start("bmk-2", "a", "t1") is None, "another benchmark's"
            adopted = [await adopt_head_start("bmk-1", m, t) for m, t in parsed.units()]
            assert [type(g) for g in adopted] == [Generation, Generation, type(None), type(None)]
            for generation in adopted:
                if isinstance(generation, Generation):
                    await take_all(generation)
        pooled = request(tmp_path, chat.url, ["a"], ["t1"], 3, execution="work-pool")
        async with head_starts(pooled, "bmk-3", store, at_once=2):  # lanes run in processes of their own
            assert await adopt_head_start("bmk-3", "a", "t1") is None
        assert chat.count == 6


async def test_a_dataset_the_head_start_cannot_read_is_the_subflows_to_report(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "store"))
    parsed = request(tmp_path, "http://127.0.0.1:9", ["m"], ["t"], 3)
    (tmp_path / "items.jsonl").unlink()
    async with head_starts(parsed, "bmk-1", store, at_once=4):
        outcome = await adopt_head_start("bmk-1", "m", "t")
    assert isinstance(outcome, DatasetError)
    assert "items.jsonl" in str(outcome)


async def test_a_head_start_that_fails_otherwise_leaves_the_subflow_to_start_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transient failure (here the store, once) is the subflow's to retry through its own task."""
    store = Store(str(tmp_path / "store"))
    parsed = request(tmp_path, "http://127.0.0.1:9", ["m"], ["t"], 3)

    def failing_write(*args: object) -> None:
        raise OSError("store unavailable")

    monkeypatch.setattr(store, "write_examples", failing_write)
    async with head_starts(parsed, "bmk-1", store, at_once=4):
        with pytest.raises(HeadStartFailed, match="store unavailable"):
            await adopt_head_start("bmk-1", "m", "t")
        assert await adopt_head_start("bmk-1", "m", "t") is None, "the subflow starts its own"


async def test_a_model_x_task_another_run_holds_waits_for_it_without_holding_up_the_flow(
    tmp_path: Path,
) -> None:
    store = Store(str(tmp_path / "store"))
    loop = asyncio.get_running_loop()
    released = asyncio.Event()

    async def other_run() -> None:
        async with store.exclusive("generations", "model=m", "task=t"):
            await released.wait()

    with ChatServer(latency=0.01) as chat:
        parsed = request(tmp_path, chat.url, ["m"], ["t"], 3)
        holder = asyncio.create_task(other_run())
        await asyncio.sleep(0.05)
        entering = loop.time()
        async with head_starts(parsed, "bmk-1", store, at_once=4):
            assert loop.time() - entering < 0.5, "the flow waited for the other run"
            adopting = asyncio.create_task(adopt_head_start("bmk-1", "m", "t"))
            await asyncio.sleep(0.5)
            assert not adopting.done() and chat.count == 0, "the model x task waits for the other run"
            released.set()
            await holder
            generation = await adopting
            assert isinstance(generation, Generation)
            await take_all(generation)
        assert chat.count == 3
