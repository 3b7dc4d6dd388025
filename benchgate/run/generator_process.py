"""The model calls of `benchgate run` in a process of their own, beside the one running its flows.

In one interpreter, the event loop that sends requests and reads answers shared one thread with
Prefect's orchestration, scoring and the report: at 50,000 items that thread was busy from the first
request to the last answer while the second core waited. Here the generations (`Generation`: the
producer, the provider's connections, the journal) live in a child process, forked from the command
once it has read the request and before it imports Prefect, so the first requests go out while the
command imports Prefect and a temporary server boots. The child starts the first models x tasks
itself (`head_starts`); each evaluate subflow drives its own through a `RemoteGeneration`, which has
the shape of a local `Generation`: it takes a shard (its rows and examples come back pickled over a
socket pair), reads progress, closes. Prefect records and retries the shards as before. The child
journals each answer as it arrives and dies with the command (PR_SET_PDEATHSIG), so a SIGKILL still
loses only requests in flight. On Linux the child is forked; elsewhere (macOS: system frameworks are
not safe to use in a forked child) it is a fresh interpreter that reads its set-up from the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import itertools
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Coroutine, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np

from benchgate.errors import BenchgateError, DatasetError
from benchgate.providers import provider_class
from benchgate.run.engine import ShardContext, ShardGenerations
from benchgate.run.evaluation import ExamplesInfo, Interval, intervals
from benchgate.run.generation import ApiKeys, Generation, adopt_head_start, head_starts
from benchgate.spec.request import BenchmarkRequest
from benchgate.store import Store

FORK = sys.platform == "linux"  # macOS: system frameworks are not safe to use in a forked child
STOP_TIMEOUT_SECONDS = 30.0  # for the child to close its generations (Parquet parts) and exit
# Each request makes objects (tasks, futures, buffers) that live a few tens of milliseconds. At
# Python's default thresholds (700, 10, 10) they were collected young, promoted, and so set off a full
# collection of the whole heap every second: 25 pauses of 0.14-0.26 s in a run of 50,000 items (4 s
# of 21 s). Collecting the youngest generation every 100,000 allocations lets them die first: at
# 50,000 items, 21.4 s -> 17.6 s wall at 50,000 allocations, 15.1 -> 14.6 s more at 100,000 (three
# alternating runs each). Cyclic garbage waits longer for a collection: bench/memory.py's peak, while
# report.html is written, was 1,304-1,368 MiB at 100,000 against 1,323 MiB at 50,000.
RUN_GC_THRESHOLDS = (100_000, 10, 10)
# A thread that waits for the GIL takes it from a running one after this long (Python's default is
# 5 ms). NumPy's bootstrap takes the GIL back after each draw and average, and beside a thread busy
# in Python each time cost up to the full interval: 5,000 items' interval took 0.13-0.23 s beside
# such a thread at 5 ms, 0.06-0.08 s at 1 ms, 0.04 s alone (the busy thread's own pace unchanged).
# Measured while the bootstrap ran in the command beside report.html's rows: at 50,000 items and
# C=128, 8 alternating runs each, the tail after the last answer 1.99 against 2.15 s (medians).
RUN_SWITCH_INTERVAL = 0.001
_HEADER = struct.Struct("!Q")
_LIBC = ctypes.CDLL(None)
_CURRENT: ContextVar[GeneratorProcess | None] = ContextVar("benchgate_generator_process", default=None)
UnitKey = tuple[str, str]  # model id, task name


class GeneratorProcessLost(RuntimeError):
    """The generation process exited while the command still needed it (a crash: exit code 4)."""


class GeneratorProcessCrash(RuntimeError):
    """An unexpected error in the generation process, with its traceback there (exit code 4)."""


@dataclass(frozen=True)
class _Setup:
    request: BenchmarkRequest
    benchmark_id: str
    store_url: str | None
    at_once: int
    api_keys: ApiKeys


@dataclass(frozen=True)
class _Opened:
    info: ExamplesInfo
    context: ShardContext
    shards: list[range]
    shards_in_flight: int


def die_with_parent(parent: int) -> None:
    """A SIGKILLed command must not leave its children behind."""
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the command died before prctl took effect
        os._exit(0)


def _yield_to_generation() -> None:
    """Schedule the command, and the threads and processes it starts from here on, as a batch job.

    While it imports Prefect and creates its flow runs, the command keeps a core busy, and the
    generation process, woken by answers to read, waited behind it: fewer than 128 requests were in
    flight then. A batch job is not let run on when another wakes. A/B, 5,000 items at C=128 and
    100 ms, running server, medians of 8, 8 and 6 alternating runs: wall 6.54 against 6.71 s, 6.29
    against 6.63, 6.26 against 6.14; 50,000 items at 20 ms, medians of 3, twice: 16.71 against 17.25 s,
    18.49 against 19.13. The child, forked before, keeps the usual policy."""
    if hasattr(os, "sched_setscheduler"):  # Linux; elsewhere the scheduler's default
        with contextlib.suppress(OSError):  # refused (a seccomp profile): scheduled as before
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))


def current() -> GeneratorProcess | None:
    """The generation process of this command, when its subflows generate there."""
    return _CURRENT.get()


@contextlib.contextmanager
def generating_in(process: GeneratorProcess | None) -> Iterator[None]:
    """Inside, the evaluate subflows of this command open their generations in `process`."""
    token = _CURRENT.set(process)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def _frame(message: object) -> list[bytes]:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return [_HEADER.pack(len(body)), body]


async def _read(reader: asyncio.StreamReader) -> Any:
    (size,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    return pickle.loads(await reader.readexactly(size))


class RemoteGeneration:
    """A model x task's generation in the generation process, as the evaluate subflow drives it."""

    def __init__(self, process: GeneratorProcess, key: UnitKey, opened: _Opened, store: Store) -> None:
        self._process, self._key = process, key
        self.info, self.context = opened.info, opened.context
        self.shards, self.shards_in_flight = opened.shards, opened.shards_in_flight
        self._examples = store.open_examples(opened.info.digest)

    async def take(self, shard: int) -> ShardGenerations:
        taken = await self._take("take", shard)
        assert taken is not None
        return taken

    async def take_reused(self, shard: int) -> ShardGenerations | None:
        return await self._take("take_reused", shard)

    async def _take(self, operation: str, shard: int) -> ShardGenerations | None:
        """The shard's rows from the child; its examples are read here, from the store, when its
        scoring needs them (see `_taken`)."""
        taken: ShardGenerations | None = await self._process.call(operation, self._key, shard)
        if taken is not None:
            taken.examples = self._examples.shard(self.shards[shard])
        return taken

    async def items_done(self) -> int:
        done: int = await self._process.call("progress", self._key)
        return done

    async def aclose(self) -> None:
        self._examples.close()
        await self._process.call("close", self._key)


class GeneratorProcess:
    """The command's side: starts the child, sends it calls, and stops it."""

    def __init__(
        self,
        benchmark_id: str,
        store: Store,
        sock: socket.socket,
        pid: int | None,
        spawned: subprocess.Popen[bytes] | None,
    ) -> None:
        self.benchmark_id = benchmark_id
        self._store = store
        self._sock, self._pid, self._spawned = sock, pid, spawned
        self._writer: asyncio.StreamWriter | None = None
        self._listener: asyncio.Task[None] | None = None
        self._connecting = asyncio.Lock()
        self._calls: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count()
        self._lost: GeneratorProcessLost | None = None
        self._status: int | None = None  # once reaped: exit code, or minus the signal that ended it

    @property
    def pid(self) -> int | None:
        """The child's process id, until it has exited."""
        return self._spawned.pid if self._spawned is not None else self._pid

    @classmethod
    def start(
        cls,
        request: BenchmarkRequest,
        benchmark_id: str,
        store_url: str | None,
        at_once: int,
        api_keys: ApiKeys,
    ) -> GeneratorProcess:
        """Fork (or spawn) the child; it starts the first `at_once` models x tasks at once. Call before
        any thread starts: a fork copies only the calling thread. From here on, this process and
        the child hand the GIL over at `RUN_SWITCH_INTERVAL`, and this process yields the cores to
        the child (`_yield_to_generation`)."""
        sys.setswitchinterval(RUN_SWITCH_INTERVAL)
        for model in request.models:  # imported once, before the fork, for both processes
            provider_class(model.provider)
        setup = _Setup(request, benchmark_id, store_url, at_once, api_keys)
        ours, theirs = socket.socketpair()
        if FORK:
            sys.stdout.flush()
            sys.stderr.flush()
            parent = os.getpid()
            pid = os.fork()
            if pid == 0:
                ours.close()
                _child(theirs, setup, parent)
            theirs.close()
            _yield_to_generation()
            return cls(benchmark_id, Store(store_url), ours, pid, None)
        command = [sys.executable, "-m", "benchgate.run.generator_process", str(theirs.fileno())]
        spawned = subprocess.Popen(command, pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL)
        theirs.close()
        ours.sendall(b"".join(_frame(setup)))
        _yield_to_generation()
        return cls(benchmark_id, Store(store_url), ours, None, spawned)

    async def open(
        self, model_id: str, task_name: str, info: ExamplesInfo | None
    ) -> RemoteGeneration | DatasetError | None:
        """With `info` None: the generation started ahead for this model x task, the DatasetError
        it met, or None when none was started (raises HeadStartFailed when it failed otherwise).
        With `info`: a generation started now on those examples."""
        key = (model_id, task_name)
        opened = await self.call("open", key, info)
        if opened is None or isinstance(opened, DatasetError):
            return opened
        return RemoteGeneration(self, key, opened, self._store)

    async def intervals(self, values: dict[str, np.ndarray]) -> dict[str, Interval]:
        """The metrics' bootstrap intervals (`evaluation.intervals`), computed here: once its answers
        are in, this process is idle, with a core and a GIL of its own, while the command collects
        report.html's rows in a thread. In the command the two shared its GIL (5,000 items: 0.22 s
        together, 0.11 s the bootstrap alone); the same function on the same values gives the same
        intervals in either process."""
        computed: dict[str, Interval] = await self.call("intervals", values)
        return computed

    async def call(self, *message: Any) -> Any:
        """Send a call and wait for its answer; its error is raised here. Cancelling the caller
        cancels the call in the child (a shard's task cancelled stops its requests)."""
        if self._lost is not None:
            raise self._lost
        writer = await self._connected()
        call = next(self._ids)
        answer = asyncio.get_running_loop().create_future()
        self._calls[call] = answer
        writer.writelines(_frame((call, *message)))
        try:
            return await answer
        except asyncio.CancelledError:
            if self._calls.pop(call, None) is not None and self._lost is None:
                writer.writelines(_frame((next(self._ids), "cancel", call)))
            raise

    async def _connected(self) -> asyncio.StreamWriter:
        """One connection for every call. Subflows make their first calls at once: unguarded, each
        opened a transport on the one socket, and the one left unreferenced closed it when collected,
        under the other (the calls then failed with EBADF)."""
        async with self._connecting:
            if self._writer is None:
                reader, self._writer = await asyncio.open_connection(sock=self._sock)
                self._listener = asyncio.create_task(self._listen(reader))
            return self._writer

    async def _listen(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                call, failed, value = await _read(reader)
                answer = self._calls.pop(call, None)
                if answer is None or answer.done():
                    continue
                if failed:
                    answer.set_exception(value)
                else:
                    answer.set_result(value)
        except (asyncio.IncompleteReadError, ConnectionError) as error:
            how = await self._how_it_ended()
            self._lost = GeneratorProcessLost(f"the generation process exited: {how} ({error})")
        except Exception as error:  # an answer that cannot be read: nothing after it can be trusted
            self._lost = GeneratorProcessLost(f"unreadable answer from the generation process: {error!r}")
        for answer in self._calls.values():
            if not answer.done():
                answer.set_exception(self._lost or GeneratorProcessLost("the generation process exited"))
        self._calls.clear()

    async def aclose(self) -> None:
        """Ask the child to close every generation and exit, and wait until it has: the finished
        answers of shards no task took become Parquet parts, and the store's locks are free."""
        if self._writer is None:
            return
        with contextlib.suppress(OSError):
            self._writer.write_eof()
        if self._listener is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._listener), STOP_TIMEOUT_SECONDS)
        self._writer.close()

    def stop(self) -> None:
        """The same from sync code, whatever state the command is in; kills the child if it hangs."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)  # the socket itself, whichever process holds a copy
        self._sock.close()
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while not self._exited() and time.monotonic() < deadline:
            time.sleep(0.005)
        if not self._exited():
            self._kill()

    def _exited(self) -> bool:
        return self._exit_status() is not None

    def _exit_status(self) -> int | None:
        """Its exit code, or minus the signal that ended it; None while it runs."""
        if self._spawned is not None:
            return self._spawned.poll()
        if self._pid is not None:
            pid, status = os.waitpid(self._pid, os.WNOHANG)
            if pid == 0:
                return None
            self._pid, self._status = None, os.waitstatus_to_exitcode(status)
        return self._status

    async def _how_it_ended(self) -> str:
        """What the user needs to tell a crash (its traceback, printed by the child) from a kill (the
        kernel's OOM killer, a signal from outside) when the socket closes under the command."""
        deadline = time.monotonic() + 2.0
        while (status := self._exit_status()) is None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if status is None:
            return "it closed its socket and still runs"
        if status < 0:
            return f"killed by {signal.Signals(-status).name}"
        if status:
            return f"exit status {status}, its traceback above"
        return "exit status 0"

    def _kill(self) -> None:
        if self._spawned is not None:
            self._spawned.kill()
            self._spawned.wait()
        elif self._pid is not None:
            os.kill(self._pid, signal.SIGKILL)
            os.waitpid(self._pid, 0)
            self._pid, self._status = None, -signal.SIGKILL


class _Generations:
    """The child's side: the generations it holds, by model x task, and the calls on them."""

    def __init__(self, setup: _Setup, store: Store) -> None:
        self.setup, self.store = setup, store
        self.opened: dict[UnitKey, Generation] = {}

    async def answer(self, operation: str, *args: Any) -> Any:
        if operation == "intervals":  # on a thread: other units may still be generating
            return await asyncio.to_thread(intervals, *args)
        if operation == "open":
            return await self._open(*args)
        key, *on_shard = args
        generation = self.opened[key]
        if operation == "take":
            return _taken(await generation.take(*on_shard))
        if operation == "take_reused":
            reused = await generation.take_reused(*on_shard)
            return _taken(reused) if reused is not None else None
        if operation == "progress":
            return await generation.items_done()
        if operation == "close":
            del self.opened[key]
            return await generation.aclose()
        raise ValueError(f"unknown call {operation!r}")

    async def _open(self, key: UnitKey, info: ExamplesInfo | None) -> _Opened | DatasetError | None:
        model_id, task_name = key
        if key in self.opened:  # the subflow's earlier attempt never closed it
            await self.opened.pop(key).aclose()
        setup = self.setup
        if info is None:
            started = await adopt_head_start(setup.benchmark_id, model_id, task_name)
            if started is None or isinstance(started, DatasetError):
                return started
            generation = started
        else:
            from benchgate.evaltasks import make_task

            request = setup.request
            eval_task = make_task(request.task(task_name), require_isolation=request.sandbox == "required")
            generation = await Generation.start(
                request,
                request.model(model_id),
                eval_task,
                info,
                setup.benchmark_id,
                self.store,
                setup.api_keys,
            )
        self.opened[key] = generation
        return _Opened(generation.info, generation.context, generation.shards, generation.shards_in_flight)

    async def aclose(self) -> None:
        for generation in self.opened.values():
            await generation.aclose()
        self.opened.clear()


def _return_freed_memory() -> None:
    """Give the heap freed by a taken shard back to the system. Its rows and examples go once sent,
    but glibc keeps what they held: the child stayed at its high-water mark (630 MiB in
    bench/memory.py) while the command built its report, and the two peaks added up."""
    with contextlib.suppress(AttributeError, OSError):  # not glibc (musl, macOS): nothing to do
        _LIBC.malloc_trim(0)


def _taken(shard: ShardGenerations) -> ShardGenerations:
    """What crosses the socket of a taken shard: its rows without their prompt, which no reader of a
    taken shard needs (it is in the journal and the Parquet part), and without its examples, which
    the command reads from the store. Both are the dataset's text again (a CNN/DailyMail article
    twice per item): sent, they took the child to 1.1 GB in bench/memory.py, the command's own peak
    plus the pickles."""
    return ShardGenerations([_without_prompt(row) for row in shard.rows], shard.requests, shard.reused)


def _without_prompt(row: dict[str, Any]) -> dict[str, Any]:
    """A copy without the prompt: copied in C and then popped, a fifth of the time of a comprehension
    (1.8 against 9.7 ms a shard of 6,250 rows, on the event loop)."""
    copy = row.copy()
    copy.pop("prompt", None)
    return copy


async def _serve(sock: socket.socket, setup: _Setup) -> None:
    """Answer the command's calls until it closes its end; then close everything it did not."""
    store = Store(setup.store_url)
    generations = _Generations(setup, store)
    running: dict[int, asyncio.Task[None]] = {}
    async with head_starts(setup.request, setup.benchmark_id, store, setup.at_once, setup.api_keys):
        reader, writer = await asyncio.open_connection(sock=sock)

        async def answer(call: int, operation: str, args: tuple[Any, ...]) -> None:
            result = None
            try:
                result = await generations.answer(operation, *args)
                reply = _frame((call, False, result))
            except asyncio.CancelledError:
                return  # the command gave up on this call
            except Exception as error:
                reply = _error_frame(call, error)
            finally:
                running.pop(call, None)
            writer.writelines(reply)
            await writer.drain()
            if operation in ("take", "close") or (operation == "take_reused" and result is not None):
                await asyncio.to_thread(_return_freed_memory)  # up to 11 ms, GIL released

        try:
            while True:
                call, operation, *args = await _read(reader)
                if operation == "cancel":
                    cancelled = running.get(args[0])
                    if cancelled is not None:
                        cancelled.cancel()
                    continue
                running[call] = asyncio.create_task(answer(call, operation, tuple(args)))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the command is done with us
        for task in running.values():
            task.cancel()
        await asyncio.gather(*running.values(), return_exceptions=True)
        await generations.aclose()
    writer.close()


def _error_frame(call: int, error: Exception) -> list[bytes]:
    """The error as the command raises it: benchgate's own as they are (their message is the user's);
    anything else is a crash, whose text says where it happened here."""
    if isinstance(error, BenchgateError):
        with contextlib.suppress(Exception):
            frame = _frame((call, True, error))
            pickle.loads(frame[1])
            return frame
    where = "".join(traceback.format_exception(type(error), error, error.__traceback__)).rstrip()
    return _frame((call, True, GeneratorProcessCrash(f"in the generation process:\n{where}")))


def _child(sock: socket.socket, setup: _Setup, parent: int) -> NoReturn:
    """The forked child: never returns into the command's code, whatever happens."""
    status = 0
    try:
        die_with_parent(parent)
        _run_child(sock, setup)
    except BaseException:
        traceback.print_exc()
        status = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)  # not the command's exit handlers, nor its buffered output a second time


def _run_child(sock: socket.socket, setup: _Setup) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the command's to handle: it stops us
    gc.freeze()  # what the command imported before the fork lives as long as this process
    gc.set_threshold(*RUN_GC_THRESHOLDS)
    gc.enable()
    sys.setswitchinterval(RUN_SWITCH_INTERVAL)  # a spawned child's (a forked one has the command's)
    event_loop_runner()(_serve(sock, setup))


def event_loop_runner() -> Callable[[Coroutine[Any, Any, None]], None]:
    """uvloop where it exists (not on Windows), for this process and the temporary Prefect server (as
    uvicorn would pick it): its event loop costs less CPU per request and answer, and this process's
    core is what bounds a fast model (50,000 items at 20 ms and C=128: 14.0 against 14.8 CPU-seconds,
    5,000 at 100 ms: 1.80 against 1.96, means of 4 and 3 alternating runs)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


def _spawned_main(fd: int) -> None:
    """A spawned child: its set-up comes first on the socket."""
    if sys.platform == "linux":
        die_with_parent(os.getppid())
    sock = socket.socket(fileno=fd)
    (size,) = _HEADER.unpack(_receive(sock, _HEADER.size))
    setup: _Setup = pickle.loads(_receive(sock, size))
    _run_child(sock, setup)


def _receive(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise EOFError("the command closed the socket before the set-up")
        chunks += chunk
    return bytes(chunks)


if __name__ == "__main__":  # run through the imported module, whose classes the command unpickles
    from benchgate.run import generator_process

    generator_process._spawned_main(int(sys.argv[1]))
