"""A model's limits held by the Prefect server, so they hold across processes (`execution: work-pool`).

On a work pool every model x task is a flow run in a process of its own, so limits.py's
per-process limiter would let three subflows of a model send three times its concurrency, its
requests and its tokens per minute. In those runs the limits are Prefect global concurrency limits,
named per model identity (provider, endpoint scheme/host/port, model name; not the key, which is
never sent anywhere), so every benchmark calling the same model shares them:

- `<name>:concurrency`: limit = `concurrency`, no decay. An attempt holds one slot, on a lease,
  from before its request is sent until it ends, or for a timed-out attempt `timeout` seconds
  later (the ghost-slot rule of http.py). A process that dies gives its slots back when the
  lease expires (2 x timeout + 60 s, so no renewal is ever needed).
- `<name>:concurrency:waiting`: not a limit but a count of the processes refused a concurrency
  slot and asking again (one slot each, on a lease). The server keeps no queue, and a process that
  has just given a slot back asks at once for its next item, so it always won; one that sees others
  waiting first pauses longer than they wait between asks (ServerLimiter.acquire).
- `<name>:requests` (with `rate_limit.requests_per_minute`): limit 1, decaying at rpm/60 slots
  per second. The server decays whole slots since the row's last update, so consecutive
  requests start at least 60/rpm s apart: at most rpm in any minute, as the local pacing.
- `<name>:tokens` (with `rate_limit.tokens_per_minute`): a leaky bucket of tokens, one slot a
  token. Limit B = tpm/20 (the burst: 3 s of tokens), decaying at (tpm - B)/60 slots per second,
  so the tokens started in any W seconds are at most B + (tpm - B) W/60: never more than tpm in any
  minute, at 95% of tpm when sustained. A request takes min(estimate, B) slots before it is sent
  (one larger than the bucket fills it instead of waiting forever; Prefect refuses more slots
  than the limit). Once the response reports its usage the difference is settled in the
  process, without an API call: a shortfall is owed and taken, in chunks of at most B, before the
  instance's next request (or when it closes); an over-estimate becomes a credit that pays for
  the next requests' tokens. A credit shrinks by (tpm - B)/60 a second from its request's start:
  the server's level drains at that rate whether or not the tokens were real, so an older credit
  may already have drained and spending it would overshoot. Left-over credit is given back
  (decremented) when the instance closes. The long-run rate is thus that of the tokens really
  used; the bound can be exceeded only by tokens under-estimated and not yet taken (a request
  that used more than its estimate, until the next one). The bucket is read before it is asked:
  Prefect records a refused ask and restarts the row's decay clock without draining it, so
  processes asking in turn would starve the bucket.

The process-local limiter stays in front, so a process never asks for more than `concurrency`
slots at once and its own retries keep their place at the head of its queue. Tokens are taken
before the request's start slot, so that starts stay paced on the wire.

Why the client's lease calls rather than `prefect.concurrency.asyncio.concurrency()`: that
context manager starts a lease-renewal thread with its own client and emits two events per
acquisition, and it cannot be held past its block, which a ghost slot must be; `rate_limit()`
would emit an event per request. The server mechanism is the same.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import re
import time
from contextlib import AsyncExitStack
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit
from uuid import UUID

import httpx

from benchgate.spec.request import ModelSpec

if TYPE_CHECKING:
    from collections.abc import Iterable

    from prefect.client.orchestration import PrefectClient

logger = logging.getLogger(__name__)

Mode = Literal["concurrency", "rate_limit", "tokens"]
LOCKED = 423  # the server's "no slot now", with Retry-After
TOO_MANY_SLOTS = 422  # more slots asked than the limit (lowered since this process read it)
# Longest wait before asking again for a concurrency slot (Prefect's Retry-After there is the mean time
# a slot is held, so a slot freed early would idle for it), or before reading a rate limit or the token
# bucket again (ServerLimiter._take_when_room: they are read, not asked, until they have room, as
# long as their level says).
MAX_WAIT: dict[Mode, float] = {"concurrency": 0.5, "rate_limit": 2.0, "tokens": 2.0}
TOKEN_BURST = 1 / 20  # of tokens_per_minute: the bucket's size (3 s of tokens)
WAITING_CAPACITY = 1_000_000  # the waiting count is never full
# How long a process that just gave a slot back lets waiting processes ask first: their longest wait
# between asks, plus the time an ask takes on a busy server.
YIELD_SECONDS = 1.25 * MAX_WAIT["concurrency"]
# What the current attempt's tokens were charged (slots, monotonic time): pace() sets it and
# settle() reads it in the same task, whose attempts run one after another.
_charge: ContextVar[tuple[int, float] | None] = ContextVar("benchgate_token_charge", default=None)


@dataclass(frozen=True)
class SharedLimit:
    """One global concurrency limit as the server should hold it."""

    name: str
    limit: int
    slot_decay_per_second: float = 0.0


@dataclass(frozen=True)
class SharedLimits:
    concurrency: SharedLimit
    requests: SharedLimit | None
    tokens: SharedLimit | None = None

    @property
    def waiting(self) -> SharedLimit:
        """Not a limit: a count of the processes refused a concurrency slot and asking again, each
        holding one slot of it on a lease while it waits (ServerLimiter.acquire)."""
        return SharedLimit(f"{self.concurrency.name}:waiting", WAITING_CAPACITY)

    def all(self) -> list[SharedLimit]:
        limits = (self.concurrency, self.waiting, self.requests, self.tokens)
        return [limit for limit in limits if limit is not None]


def model_identity(spec: ModelSpec, endpoint: str) -> str:
    """What makes two requests' models the same account limit: provider, scheme://host:port, model."""
    parts = urlsplit(endpoint)
    return f"{spec.provider}|{parts.scheme}://{parts.netloc.lower()}|{spec.model_name}"


def token_limit(name: str, tokens_per_minute: float) -> SharedLimit:
    """The token bucket: B = tpm/20 slots, decaying so that B + a minute's decay = tpm.

    Below 40 tpm the burst is one token and the decay is kept at half the rate at least (a decay of
    zero would make it a concurrency limit, which rate-limit mode refuses).
    """
    burst = max(1, math.floor(tokens_per_minute * TOKEN_BURST))
    return SharedLimit(name, burst, max(tokens_per_minute - burst, tokens_per_minute / 2) / 60.0)


def shared_limits(spec: ModelSpec, endpoint: str) -> SharedLimits:
    """The limits of `spec` at `endpoint`, named by a hash of its identity (plus a readable hint)."""
    digest = hashlib.sha256(model_identity(spec, endpoint).encode()).hexdigest()[:16]
    hint = re.sub(r"[^A-Za-z0-9._-]+", "_", spec.model_name)[:40]
    base = f"benchgate:{hint}:{digest}"
    rpm = spec.rate_limit.requests_per_minute if spec.rate_limit else None
    tpm = spec.rate_limit.tokens_per_minute if spec.rate_limit else None
    return SharedLimits(
        SharedLimit(f"{base}:concurrency", spec.concurrency),
        SharedLimit(f"{base}:requests", 1, rpm / 60.0) if rpm else None,
        token_limit(f"{base}:tokens", tpm) if tpm else None,
    )


async def upsert_limits(client: PrefectClient, models: Iterable[SharedLimits]) -> None:
    """Create the limits, or set them to these values: the latest benchmark's request decides.

    Models of one request with the same identity (two ids, other params) share the strictest.
    """
    strictest: dict[str, SharedLimit] = {}
    for limits in models:
        for limit in limits.all():
            seen = strictest.get(limit.name)
            if seen is None or (limit.limit, limit.slot_decay_per_second) < (
                seen.limit,
                seen.slot_decay_per_second,
            ):
                strictest[limit.name] = limit
    for limit in strictest.values():
        await client.upsert_global_concurrency_limit_by_name(
            limit.name, limit.limit, limit.slot_decay_per_second or None
        )


async def _read_or_create(client: PrefectClient, limit: SharedLimit) -> SharedLimit:
    """The limit as the server holds it, created with our values if missing.

    Existing values are left alone: a worker must not undo what the dispatcher set.
    """
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    try:
        found = await client.read_global_concurrency_limit_by_name(limit.name)
    except ObjectNotFound:
        try:
            await client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(
                    name=limit.name, limit=limit.limit, slot_decay_per_second=limit.slot_decay_per_second
                )
            )
            return limit
        except ObjectAlreadyExists:  # another process created it meanwhile
            found = await client.read_global_concurrency_limit_by_name(limit.name)
    return SharedLimit(found.name, found.limit, found.slot_decay_per_second or 0.0)


def _retry_after(error: httpx.HTTPStatusError) -> float:
    try:
        wait = max(0.0, float(error.response.headers.get("retry-after", 1.0)))
    except ValueError:
        wait = 1.0
    return min(MAX_WAIT["concurrency"], wait)


class ServerLimiter:
    """One provider instance's side of the shared limits: slots on leases, request and token pacing.

    A concurrency slot is one API call (plus one per 423 retry) and its release one more; a request
    or token slot a read and a take (the level is read, not asked, until it has room: a refusal would
    reset the server's decay clock); that is why only work-pool runs use it. A process asks for one
    slot of a limit at a time (its other items queue here, in order).
    """

    def __init__(self, spec: ModelSpec, endpoint: str) -> None:
        self.limits = shared_limits(spec, endpoint)
        self.lease_seconds = 2 * spec.timeout + 60.0  # an attempt and its ghost hold, renewal never needed
        self._stack = AsyncExitStack()
        self._client: PrefectClient | None = None
        self._connecting = asyncio.Lock()
        self._turns: dict[Mode, asyncio.Lock] = {mode: asyncio.Lock() for mode in MAX_WAIT}
        self._tokens = self.limits.tokens  # as the server holds it, once connected
        self._owed = 0  # tokens used beyond what was taken, to take before the next request
        self._credit = 0.0  # tokens taken beyond what was used, as of _credit_at
        self._credit_at = 0.0
        self._released_at = -math.inf  # when this instance last gave a concurrency slot back
        self._others_waiting = False  # as last read, at _waiters_read_at
        self._waiters_read_at = -math.inf

    async def _connect(self) -> PrefectClient:
        async with self._connecting:
            if self._client is None:
                from prefect.client.orchestration import get_client

                client = await self._stack.enter_async_context(get_client())
                for limit in self.limits.all():
                    found = await _read_or_create(client, limit)
                    if limit is self.limits.tokens:
                        self._tokens = found
                self._client = client
        return self._client

    async def acquire(self) -> UUID:
        """Hold one of the model's concurrency slots, waiting as the server says, in turn with the
        other processes; the lease to give back to `release`.

        The server keeps no queue: a refused process asks again after Retry-After (at most
        MAX_WAIT), while one that just gave a slot back asks at once for its next item and always
        won, keeping every slot until it ran out of work (three lanes of one model ran one after
        another). So a refused process marks itself waiting, and one that asks right after a release
        while others wait first pauses a little longer than that: each of them asks once meanwhile.
        """
        client = self._client or await self._connect()
        async with self._turns["concurrency"]:
            just_released = time.monotonic() - self._released_at < MAX_WAIT["concurrency"]
            if just_released and await self._others_wait(client):
                await asyncio.sleep(YIELD_SECONDS)
            waiting: UUID | None = None  # this process's mark in the waiting count, once refused
            try:
                while True:
                    try:
                        return await self._lease(client, self.limits.concurrency.name)
                    except httpx.HTTPStatusError as error:
                        if error.response.status_code != LOCKED:
                            raise
                        wait = _retry_after(error)
                    waiting = waiting or await self._lease(client, self.limits.waiting.name)
                    await asyncio.sleep(wait)
            finally:
                if waiting is not None:
                    await self._give_back(client, waiting, "this process's waiting mark")

    async def _others_wait(self, client: PrefectClient) -> bool:
        """Whether another process waits for a slot, read at most once per MAX_WAIT."""
        now = time.monotonic()
        if now - self._waiters_read_at >= MAX_WAIT["concurrency"]:
            found = await client.read_global_concurrency_limit_by_name(self.limits.waiting.name)
            self._others_waiting, self._waiters_read_at = found.active_slots > 0, now
        return self._others_waiting

    async def _lease(self, client: PrefectClient, name: str) -> UUID:
        """One slot of `name` on a lease, so that a process that dies holding it does not hold it long."""
        response = await client.increment_concurrency_slots_with_lease(
            names=[name], slots=1, mode="concurrency", lease_duration=self.lease_seconds
        )
        return UUID(response.json()["lease_id"])

    async def _give_back(self, client: PrefectClient, lease: UUID, what: str) -> bool:
        """Release a lease; if the server cannot be reached, it expires on its own."""
        try:
            await client.release_concurrency_slots_with_lease(lease)
        except httpx.HTTPError as error:
            logger.warning("could not release %s (it expires in %.0f s): %s", what, self.lease_seconds, error)
            return False
        return True

    async def pace(self, estimate: float) -> None:
        """Wait for the model's tokens, then its next request start, as far as it has such limits."""
        if self.limits.tokens is None and self.limits.requests is None:
            return
        client = self._client or await self._connect()
        if self.limits.tokens is not None:
            async with self._turns["tokens"]:
                _charge.set(await self._take_tokens(client, estimate))
        if self.limits.requests is not None:
            async with self._turns["rate_limit"]:
                await self._take_when_room(client, self.limits.requests.name, 1, "rate_limit")

    async def _take_tokens(self, client: PrefectClient, estimate: float) -> tuple[int, float]:
        """Take what is owed, in chunks the bucket holds, then this request's charge; the charge and when."""
        while True:
            bucket = self._tokens
            assert bucket is not None
            try:
                while self._owed > 0:
                    chunk = min(self._owed, bucket.limit)
                    await self._take(client, bucket.name, chunk)
                    self._owed -= chunk
                charge = min(max(0, math.ceil(estimate)), bucket.limit)
                await self._take(client, bucket.name, charge)
                return charge, time.monotonic()
            except httpx.HTTPStatusError as error:
                fresh = await _read_or_create(client, bucket)
                if error.response.status_code != TOO_MANY_SLOTS or fresh == bucket:
                    raise
                self._tokens = fresh  # lowered by a later benchmark since this process read it

    async def _take(self, client: PrefectClient, name: str, slots: int) -> None:
        """Take `slots` tokens, paying with credit first (spent before waiting: settle may add to it)."""
        credit = self._credit_now()
        spent = min(credit, slots)
        self._spend(credit - spent)
        if slots > spent:
            await self._take_when_room(client, name, math.ceil(slots - spent), "tokens")

    async def _take_when_room(self, client: PrefectClient, name: str, slots: int, mode: Mode) -> None:
        """Take `slots` of a decaying limit (requests, tokens) once it has room, reading its level first.

        A refused ask records the refusal and moves the row's update time without draining the
        bucket, and the server drains only since that time: asking until it fits would drain nothing
        while any process keeps asking. A read changes nothing, so only races are refused.
        """
        while True:
            found = await client.read_global_concurrency_limit_by_name(name)
            excess = found.active_slots + slots - found.limit
            if excess > 0:
                await asyncio.sleep(min(MAX_WAIT[mode], excess / found.slot_decay_per_second + 0.01))
                continue
            try:
                await client.increment_concurrency_slots(names=[name], slots=slots, mode="rate_limit")
                return
            except httpx.HTTPStatusError as error:
                if error.response.status_code != LOCKED:  # 423: another process was first
                    raise

    def _credit_now(self) -> float:
        return max(0.0, self._credit - self._drained_since(self._credit_at))

    def _drained_since(self, moment: float) -> int:
        """Whole tokens the bucket drains in the time since `moment`, as the server counts them."""
        assert self._tokens is not None
        return math.floor((time.monotonic() - moment) * self._tokens.slot_decay_per_second)

    def _spend(self, left: float) -> None:
        self._credit, self._credit_at = left, time.monotonic()

    def settle(self, used: float) -> None:
        """Correct the current attempt's token charge (recorded by `pace` in this task) by its usage."""
        charge = _charge.get()
        if charge is None or self._tokens is None:
            return
        _charge.set(None)
        slots, at = charge
        difference = math.ceil(used) - slots
        if difference > 0:
            self._owed += difference
        elif difference < 0:
            self._spend(self._credit_now() + max(0, -difference - self._drained_since(at)))

    async def release(self, lease: UUID) -> None:
        """Give a slot back; if the server cannot be reached, the lease expires on its own."""
        client = self._client or await self._connect()
        if await self._give_back(client, lease, "a shared concurrency slot"):
            self._released_at = time.monotonic()

    async def _close_tokens(self, client: PrefectClient) -> None:
        """Take what is still owed (the next benchmark of the model must not inherit it), give credit back."""
        assert self._tokens is not None
        async with self._turns["tokens"]:
            if self._owed:
                await self._take_tokens(client, 0)
            credit = math.floor(self._credit_now())
            if credit > 0:
                await client.release_concurrency_slots(
                    names=[self._tokens.name], slots=credit, occupancy_seconds=1.0
                )
            self._spend(0.0)

    async def aclose(self) -> None:
        try:
            if self._client is not None and self._tokens is not None:
                await self._close_tokens(self._client)
        except httpx.HTTPError as error:
            logger.warning("could not settle the shared token limit: %s", error)
        finally:
            await self._stack.aclose()
            self._client = None
