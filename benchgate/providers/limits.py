"""Per-model concurrency and rate limits, shared by every provider instance in the process.

Several evaluate subflows may call the same model at once, in one event loop or in task-runner
threads with loops of their own, so the limiter is keyed by model id and is thread-safe: waiters
park on a future of their own loop and are woken with `call_soon_threadsafe` from another thread.

Rates are paced with GCRA (a token bucket without a burst allowance): each request reserves the
next start time, spaced 60/requests_per_minute apart and tokens*60/tokens_per_minute apart, so a
minute's allowance is spread over the minute instead of being sent at once.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from benchgate.spec.request import ModelSpec

# Set in a work-pool lane: there the limits are the Prefect server's (shared_limits.py), which
# imports httpx; here, so that a run whose limits this process holds never imports it.
_held_by_server: ContextVar[bool] = ContextVar("benchgate_limits_held_by_server", default=False)


@contextmanager
def limits_across_processes() -> Iterator[None]:
    """Within this block, providers created take their limits from the Prefect server."""
    token = _held_by_server.set(True)
    try:
        yield
    finally:
        _held_by_server.reset(token)


def held_by_server() -> bool:
    return _held_by_server.get()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class ModelLimiter:
    """Concurrency slots plus request and token pacing for one model id."""

    def __init__(
        self,
        concurrency: int,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
    ) -> None:
        self.concurrency = concurrency
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self._lock = threading.Lock()
        self._free = concurrency
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()
        self._next_request_at = 0.0
        self._next_tokens_at = 0.0

    async def acquire(self, *, first: bool = False) -> None:
        """Take a concurrency slot, waiting in FIFO order across loops and threads.

        `first` puts a retry at the head of the queue: an item that already waited its turn (and
        its backoff) should not queue again behind every item submitted since, which would hold
        up whatever waits for it (a shard, a report).
        """
        with self._lock:
            if self._free > 0 and not self._waiters:
                self._free -= 1
                return
            loop = asyncio.get_running_loop()
            future: asyncio.Future[None] = loop.create_future()
            if first:
                self._waiters.appendleft((loop, future))
            else:
                self._waiters.append((loop, future))
        try:
            await future
        except asyncio.CancelledError:
            with self._lock:
                if (loop, future) in self._waiters:
                    self._waiters.remove((loop, future))
                    raise
            # The slot was handed over; if the hand-over callback has not run yet it sees the
            # cancelled future and passes the slot on, otherwise we own it and give it back.
            if future.done() and not future.cancelled():
                self.release()
            raise

    def release(self) -> None:
        with self._lock:
            if not self._waiters:
                self._free += 1
                return
            loop, future = self._waiters.popleft()
        try:
            if loop is _running_loop():  # the common case: no wake-up write to the loop's self-pipe
                loop.call_soon(self._hand_over, future)
            else:
                loop.call_soon_threadsafe(self._hand_over, future)
        except RuntimeError:  # that loop is closed: nobody is waiting there any more
            self.release()

    def _hand_over(self, future: asyncio.Future[None]) -> None:
        if future.done():
            self.release()
        else:
            future.set_result(None)

    def reserve(self, tokens: float) -> float:
        """Book the next start time for a request of `tokens`; returns seconds to wait."""
        now = time.monotonic()
        start = now
        with self._lock:
            if self.requests_per_minute:
                start = max(start, self._next_request_at)
                self._next_request_at = max(self._next_request_at, now) + 60.0 / self.requests_per_minute
            if self.tokens_per_minute:
                start = max(start, self._next_tokens_at)
                self._next_tokens_at = max(self._next_tokens_at, now) + tokens * 60.0 / self.tokens_per_minute
        return start - now

    def settle(self, estimated: float, actual: float) -> None:
        """Correct the token booking once the provider reported real usage."""
        if self.tokens_per_minute and actual != estimated:
            with self._lock:
                self._next_tokens_at += (actual - estimated) * 60.0 / self.tokens_per_minute

    async def wait_for_rate(self, tokens: float) -> None:
        delay = self.reserve(tokens)
        if delay > 0:
            await asyncio.sleep(delay)


_limiters: dict[tuple[str, int, float | None, float | None], ModelLimiter] = {}
_registry_lock = threading.Lock()


def limiter_for(spec: ModelSpec) -> ModelLimiter:
    """The process-wide limiter of `spec.id`.

    The limits are part of the key, so a later benchmark in a long-lived process (the API) that
    configures the same model id differently gets its own limits instead of stale ones.
    """
    rate = spec.rate_limit
    key = (
        spec.id,
        spec.concurrency,
        rate.requests_per_minute if rate else None,
        rate.tokens_per_minute if rate else None,
    )
    with _registry_lock:
        limiter = _limiters.get(key)
        if limiter is None:
            limiter = _limiters[key] = ModelLimiter(*key[1:])
        return limiter
