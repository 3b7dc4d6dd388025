"""`benchgate run` generates in a process of its own; its subflows drive it over a socket pair.

The process is started from sync code before any event loop, as the command starts it, against a
chat server in a process of its own: this test process then runs no thread that a fork could copy
half-way. The command's own path (fork, head start, SIGKILL) is covered end to end in
tests/interfaces/test_embedded.py and tests/e2e/test_pipeline.py.
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import pytest

from benchgate.errors import DatasetError, ProviderConfigError
from benchgate.evaltasks import make_task
from benchgate.run import evaluation, generator_process
from benchgate.run.evaluation import prepare_examples
from benchgate.run.generator_process import (
    GeneratorProcess,
    GeneratorProcessCrash,
    GeneratorProcessLost,
    RemoteGeneration,
)
from benchgate.spec.example import Example
from benchgate.spec.request import BenchmarkRequest
from benchgate.store import Store
from scorers.stats import bootstrap_ci
from tests.support.processes import REPO_ROOT


class ChatProcess:
    """tests/support/chat_servers.py in a process of its own."""

    def __init__(self, *flags: str) -> None:
        command = [sys.executable, "-m", "tests.support.chat_servers", "--port", "0", *flags]
        self.process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.url = json.loads(self.process.stdout.readline())["url"]

    @property
    def count(self) -> int:
        return int(httpx.get(self.url + "/_stats").json()["requests"])

    def reset(self) -> None:
        httpx.post(self.url + "/_reset")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def chat() -> Iterator[ChatProcess]:
    server = ChatProcess("--latency", "0.02")
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def usual_scheduling() -> Iterator[None]:
    """`start` makes this process a batch job, as it makes the command: not for the tests after."""
    if not hasattr(os, "sched_setscheduler"):
        yield
        return
    policy = os.sched_getscheduler(0)
    yield
    os.sched_setscheduler(0, policy, os.sched_param(0))


@pytest.fixture(params=["fork", "spawn"])
def how(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Forked on Linux; a fresh interpreter where forking is unsafe (macOS)."""
    monkeypatch.setattr(generator_process, "FORK", request.param == "fork")
    return str(request.param)


def echo_request(tmp_path: Path, url: str, n: int, tasks: tuple[str, ...] = ("t",)) -> BenchmarkRequest:
    items = tmp_path / "items.jsonl"
    items.write_text(
        "".join(json.dumps({"id": str(i), "q": f"q{i}", "a": f"echo: q{i}"}) + "\n" for i in range(n))
    )
    task = {
        "dataset": str(items),
        "id_field": "id",
        "prompt": "{{ q }}",
        "target": "a",
        "metrics": ["exact-match"],
    }
    return BenchmarkRequest.model_validate(
        {
            "name": "process",
            "models": [
                {"id": "m", "provider": "openai-compatible", "base_url": url + "/v1", "concurrency": 4}
            ],
            "tasks": [{"task": name, **task, "metrics": ["exact-match"]} for name in tasks],
        }
    )


def start(request: BenchmarkRequest, store: Path, at_once: int = 4) -> GeneratorProcess:
    return GeneratorProcess.start(request, "bmk-1", str(store), at_once, {"m": None})


async def until(condition: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_the_child_generates_at_once_and_a_subflow_takes_every_shard(
    tmp_path: Path, chat: ChatProcess, how: str
) -> None:
    chat.reset()
    request = echo_request(tmp_path, chat.url, 250)
    process = start(request, tmp_path / "store")
    pid = process.pid

    async def subflow() -> tuple[list[Any], list[Example], int]:
        await until(lambda: chat.count > 0)  # nothing has called the child yet: its head start
        generation = await process.open("m", "t", None)
        assert isinstance(generation, RemoteGeneration)
        assert generation.info.n_examples == 250 and generation.shards == [range(0, 3)]
        taken = [await generation.take(shard) for shard in range(len(generation.shards))]
        # Read from the store when first used, as scoring does: while the generation is open.
        examples = [example for shard in taken for example in shard.examples]
        done = await generation.items_done()
        await generation.aclose()
        await process.aclose()
        return taken, examples, done

    try:
        taken, examples, done = asyncio.run(subflow())
    finally:
        process.stop()
    assert not psutil.pid_exists(pid), "the child exited and was reaped"
    rows = [row for shard in taken for row in shard.rows]
    assert sorted(row["example_id"] for row in rows) == sorted(str(i) for i in range(250))
    assert all(
        row["output"] == f"echo: q{row['example_id']}" and row["benchmark_id"] == "bmk-1" for row in rows
    )
    assert [example.example_id for example in examples] == [str(i) for i in range(250)]
    assert done == 250 and chat.count == 250
    stored = Store(str(tmp_path / "store")).read_generations("m", "t")
    assert len(stored) == 250, "each answer in the store"
    assert all(row["prompt"] == f'[{{"role":"user","content":"q{row["example_id"]}"}}]' for row in stored), (
        "the prompt stays there, though not sent back"
    )


def test_a_unit_without_a_head_start_opens_on_the_examples_the_subflow_read(
    tmp_path: Path, chat: ChatProcess
) -> None:
    chat.reset()
    request = echo_request(tmp_path, chat.url, 30, tasks=("a", "b"))
    store = Store(str(tmp_path / "store"))
    process = start(request, tmp_path / "store", at_once=1)

    async def subflow() -> list[str]:
        assert await process.open("m", "b", None) is None, "only the first unit was started ahead"
        info = prepare_examples(store, make_task(request.task("b")))  # what tasks/examples.py does
        generation = await process.open("m", "b", info)
        assert isinstance(generation, RemoteGeneration)
        taken = await generation.take(0)
        # The head start of a may still be sending (its examples are read on a thread, b's here):
        # what is asserted below is that its answers outlive the close, so let them all arrive.
        await until(lambda: len(store.reusable_generations("m", "a")) == 30)
        await generation.aclose()
        await process.aclose()
        return [row["output"] for row in taken.rows]

    try:
        outputs = asyncio.run(subflow())
    finally:
        process.stop()
    assert sorted(outputs) == sorted(f"echo: q{i}" for i in range(30))
    assert len(store.reusable_generations("m", "a")) == 30, (
        "the head start of a, never opened, kept its answers"
    )


def test_errors_come_back_as_the_command_raises_them(tmp_path: Path) -> None:
    refusing = ChatProcess("--fault", "401=1")
    try:
        request = echo_request(tmp_path, refusing.url, 5, tasks=("t", "gone"))
        data = request.model_dump(mode="json")
        data["tasks"][1]["dataset"] = str(tmp_path / "missing.jsonl")
        process = start(BenchmarkRequest.model_validate(data), tmp_path / "store")

        async def subflow() -> None:
            generation = await process.open("m", "t", None)
            assert isinstance(generation, RemoteGeneration)
            with pytest.raises(ProviderConfigError) as refused:
                await generation.take(0)
            assert refused.value.status == 401
            await generation.aclose()
            missing = await process.open("m", "gone", None)
            assert isinstance(missing, DatasetError) and "missing.jsonl" in str(missing)
            with pytest.raises(GeneratorProcessCrash, match="KeyError"):
                await process.call("take", ("m", "never opened"), 0)
            await process.aclose()

        try:
            asyncio.run(subflow())
        finally:
            process.stop()
    finally:
        refusing.stop()


def test_a_cancelled_take_stops_its_requests(tmp_path: Path) -> None:
    slow = ChatProcess("--latency", "0.2")
    try:
        request = echo_request(tmp_path, slow.url, 200)
        process = start(request, tmp_path / "store")

        async def subflow() -> tuple[int, int]:
            generation = await process.open("m", "t", None)
            assert isinstance(generation, RemoteGeneration)
            taking = asyncio.create_task(generation.take(0))
            await until(lambda: slow.count >= 8)
            taking.cancel()
            await asyncio.gather(taking, return_exceptions=True)
            await asyncio.sleep(0.5)  # the requests in flight at the cancel end
            asked = slow.count
            await asyncio.sleep(0.6)
            await generation.aclose()
            await process.aclose()
            return asked, slow.count

        try:
            asked, later = asyncio.run(subflow())
        finally:
            process.stop()
        assert asked == later < 200
    finally:
        slow.stop()


def test_a_child_that_dies_fails_the_calls_waiting_on_it(tmp_path: Path, chat: ChatProcess) -> None:
    request = echo_request(tmp_path, chat.url, 10)
    process = start(request, tmp_path / "store")
    pid = process.pid

    async def subflow() -> None:
        generation = await process.open("m", "t", None)
        assert isinstance(generation, RemoteGeneration)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(GeneratorProcessLost, match="killed by SIGKILL"):
            await generation.take(0)
        with pytest.raises(GeneratorProcessLost, match="killed by SIGKILL"):
            await generation.items_done()

    try:
        asyncio.run(subflow())
    finally:
        process.stop()


def test_intervals_are_computed_in_the_child_and_equal_the_commands(
    tmp_path: Path, chat: ChatProcess, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same function on the same values: the same floats, whichever process computes them."""
    values = {
        "f1": np.random.default_rng(7).random(3001),
        "exact": (np.arange(500) % 3 == 0).astype(float),
        "none": np.array([]),
    }
    expected = {"f1": bootstrap_ci(values["f1"]), "exact": bootstrap_ci(values["exact"])}
    process = start(echo_request(tmp_path, chat.url, 10), tmp_path / "store")

    def in_the_command(*args: Any, **kwargs: Any) -> tuple[float, float]:
        raise AssertionError("computed in the command")

    monkeypatch.setattr(evaluation, "bootstrap_ci", in_the_command)  # the child has its own copy
    try:
        computed = asyncio.run(process.intervals(values))
    finally:
        process.stop()
    assert computed.pop("none") == pytest.approx((math.nan, math.nan), nan_ok=True)
    assert computed == expected


def _explode() -> None:
    raise RuntimeError("this call cannot be read")


class _Unreadable:
    """Pickles, but raises where it is unpickled: in the child."""

    def __reduce__(self) -> tuple[Callable[[], None], tuple[()]]:
        return _explode, ()


def test_a_child_that_crashes_says_so_and_prints_where(
    tmp_path: Path, chat: ChatProcess, capfd: pytest.CaptureFixture[str]
) -> None:
    """Its traceback is on stderr and the command's error says to look there (exit status 1), not
    only that the socket closed."""
    process = start(echo_request(tmp_path, chat.url, 10), tmp_path / "store")

    async def subflow() -> None:
        with pytest.raises(GeneratorProcessLost, match="exit status 1, its traceback above"):
            await process.call("open", _Unreadable())

    try:
        asyncio.run(subflow())
    finally:
        process.stop()
    assert "RuntimeError: this call cannot be read" in capfd.readouterr().err


def test_a_command_that_stops_before_its_flow_stops_the_child_and_keeps_its_answers(
    tmp_path: Path, chat: ChatProcess
) -> None:
    """The command failed between the fork and its flow: stop() alone closes the head start."""
    chat.reset()
    request = echo_request(tmp_path, chat.url, 40)
    process = start(request, tmp_path / "store")
    pid = process.pid
    store = Store(str(tmp_path / "store"))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(store.reusable_generations("m", "t")) < 40:
        time.sleep(0.05)  # every answer journaled (requests received are not all answered yet)
    process.stop()
    assert not psutil.pid_exists(pid)
    assert len(store.reusable_generations("m", "t")) == 40
    parts = list((tmp_path / "store" / "generations").rglob("part-*.parquet"))
    assert parts, "the journal became a Parquet part"


@pytest.mark.skipif(not hasattr(os, "sched_setscheduler"), reason="scheduling policies are Linux's")
def test_the_command_yields_the_cores_to_the_child(tmp_path: Path, chat: ChatProcess, how: str) -> None:
    """The command is a batch job from the start on (its threads too); the child is not."""
    usual = os.sched_getscheduler(0)
    assert usual == os.SCHED_OTHER
    process = start(echo_request(tmp_path, chat.url, 8), tmp_path / "store")
    try:
        assert os.sched_getscheduler(0) == os.SCHED_BATCH
        policies: list[int] = []
        thread = threading.Thread(target=lambda: policies.append(os.sched_getscheduler(0)))
        thread.start()
        thread.join()
        assert policies == [os.SCHED_BATCH]
        assert process.pid is not None
        assert os.sched_getscheduler(process.pid) == usual
    finally:
        process.stop()


def test_first_calls_made_at_once_share_one_connection(tmp_path: Path, chat: ChatProcess) -> None:
    """Subflows make their first calls together; the socket must still have one reader."""
    process = start(echo_request(tmp_path, chat.url, 8, tasks=("t", "u")), tmp_path / "store")
    try:

        async def drive() -> None:
            first = await asyncio.gather(*(process.open("m", task, None) for task in ("t", "u")))
            assert all(isinstance(opened, RemoteGeneration) for opened in first)
            gc.collect()  # a second transport, had one been opened, would close the socket here
            assert all([await opened.items_done() >= 0 for opened in first if opened is not None])
            await process.aclose()

        asyncio.run(drive())
    finally:
        process.stop()
