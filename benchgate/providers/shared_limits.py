"""A model's limits held by the Prefect server, so they hold across processes (`execution: work-pool`).

On a work pool every model x task is a flow run in a process of its own, so limits.py's
per-process limiter would let three subflows of a model send three times its concurrency and
its requests per minute. In those runs the limits are Prefect global concurrency limits, one
pair per model identity (provider, endpoint scheme/host/port, model name; not the key, which is
never sent anywhere), so every benchmark calling the same model shares them:

- `<name>:concurrency`: limit = `concurrency`, no decay. An attempt holds one slot, on a lease,
  from before its request is sent until it ends, or for a timed-out attempt `timeout` seconds
  later (the ghost-slot rule of http.py). A process that dies gives its slots back when the
  lease expires (2 x timeout + 60 s, so no renewal is ever needed).
- `<name>:requests` (with `rate_limit.requests_per_minute`): limit 1, decaying at rpm/60 slots
  per second. The server decays whole slots since the row's last update, so consecutive
  requests start at least 60/rpm s apart: at most rpm in any minute, as the local pacing.

The process-local limiter stays in front, so a process never asks for more than `concurrency`
slots at once and its own retries keep their place at the head of its queue. `tokens_per_minute`
is still paced per process (a request's token count is only an estimate until it returns).

Why the client's lease calls rather than `prefect.concurrency.asyncio.concurrency()`: that
context manager starts a lease-renewal thread with its own client and emits two events per
acquisition, and it cannot be held past its block, which a ghost slot must be; `rate_limit()`
would emit an event per request. The server mechanism is the same.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from contextlib import AsyncExitStack, contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit
from uuid import UUID

import httpx

from benchgate.spec.request import ModelSpec

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from prefect.client.orchestration import PrefectClient

logger = logging.getLogger(__name__)

LOCKED = 423  # the server's "no slot now", with Retry-After
# Longest wait before asking again for a slot. Prefect's Retry-After for a concurrency limit is the
# mean time a slot is held, so a slot freed early would idle for it; polling is safe there. A rate
# limit's hint is kept: the server drops decay since the limit's last update, refusals included, so
# asking more often than a slot decays would starve it.
MAX_WAIT = {"concurrency": 0.5, "rate_limit": 10.0}
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


def model_identity(spec: ModelSpec, endpoint: str) -> str:
    """What makes two requests' models the same account limit: provider, scheme://host:port, model."""
    parts = urlsplit(endpoint)
    return f"{spec.provider}|{parts.scheme}://{parts.netloc.lower()}|{spec.model_name}"


def shared_limits(spec: ModelSpec, endpoint: str) -> SharedLimits:
    """The limits of `spec` at `endpoint`, named by a hash of its identity (plus a readable hint)."""
    digest = hashlib.sha256(model_identity(spec, endpoint).encode()).hexdigest()[:16]
    hint = re.sub(r"[^A-Za-z0-9._-]+", "_", spec.model_name)[:40]
    base = f"benchgate:{hint}:{digest}"
    rpm = spec.rate_limit.requests_per_minute if spec.rate_limit else None
    return SharedLimits(
        SharedLimit(f"{base}:concurrency", spec.concurrency),
        SharedLimit(f"{base}:requests", 1, rpm / 60.0) if rpm else None,
    )


async def upsert_limits(client: PrefectClient, models: Iterable[SharedLimits]) -> None:
    """Create the limits, or set them to these values: the latest benchmark's request decides.

    Models of one request with the same identity (two ids, other params) share the strictest.
    """
    strictest: dict[str, SharedLimit] = {}
    for limits in models:
        for limit in (limits.concurrency, limits.requests):
            if limit is None:
                continue
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


async def _create_missing(client: PrefectClient, limits: SharedLimits) -> None:
    """Create what does not exist yet, leaving existing values alone (a worker must not undo a dispatcher)."""
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    for limit in (limits.concurrency, limits.requests):
        if limit is None:
            continue
        try:
            await client.read_global_concurrency_limit_by_name(limit.name)
        except ObjectNotFound:
            with suppress(ObjectAlreadyExists):  # another process created it meanwhile
                await client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(
                        name=limit.name, limit=limit.limit, slot_decay_per_second=limit.slot_decay_per_second
                    )
                )


def _retry_after(error: httpx.HTTPStatusError, mode: Literal["concurrency", "rate_limit"]) -> float:
    try:
        wait = max(0.0, float(error.response.headers.get("retry-after", 1.0)))
    except ValueError:
        wait = 1.0
    return min(MAX_WAIT[mode], wait)


class ServerLimiter:
    """One provider instance's side of the shared limits: slots on leases, request pacing.

    Each acquisition is one API call (plus one per 423 retry), and each release one more; that is
    why only work-pool runs use it. A process asks for one slot of a limit at a time (its other
    items queue here, in order): every refusal raises the server's Retry-After for all processes.
    """

    def __init__(self, spec: ModelSpec, endpoint: str) -> None:
        self.limits = shared_limits(spec, endpoint)
        self.lease_seconds = 2 * spec.timeout + 60.0  # an attempt and its ghost hold, renewal never needed
        self._stack = AsyncExitStack()
        self._client: PrefectClient | None = None
        self._connecting = asyncio.Lock()
        self._turns = {"concurrency": asyncio.Lock(), "rate_limit": asyncio.Lock()}

    async def _connect(self) -> PrefectClient:
        async with self._connecting:
            if self._client is None:
                from prefect.client.orchestration import get_client

                client = await self._stack.enter_async_context(get_client())
                await _create_missing(client, self.limits)
                self._client = client
        return self._client

    async def _increment(self, name: str, mode: Literal["concurrency", "rate_limit"]) -> UUID | None:
        """Take one slot of `name`, waiting as the server says; a lease id for concurrency slots."""
        client = self._client or await self._connect()
        async with self._turns[mode]:
            return await self._increment_now(client, name, mode)

    async def _increment_now(
        self, client: PrefectClient, name: str, mode: Literal["concurrency", "rate_limit"]
    ) -> UUID | None:
        while True:
            try:
                if mode == "rate_limit":
                    await client.increment_concurrency_slots(names=[name], slots=1, mode=mode)
                    return None
                response = await client.increment_concurrency_slots_with_lease(
                    names=[name], slots=1, mode=mode, lease_duration=self.lease_seconds
                )
                return UUID(response.json()["lease_id"])
            except httpx.HTTPStatusError as error:
                if error.response.status_code != LOCKED:
                    raise
                await asyncio.sleep(_retry_after(error, mode))

    async def acquire(self) -> UUID:
        """Hold one of the model's concurrency slots; the lease to give back to `release`."""
        lease = await self._increment(self.limits.concurrency.name, "concurrency")
        assert lease is not None
        return lease

    async def pace(self) -> None:
        """Wait for the model's next request start, if it has a requests-per-minute limit."""
        if self.limits.requests is not None:
            await self._increment(self.limits.requests.name, "rate_limit")

    async def release(self, lease: UUID) -> None:
        """Give a slot back; if the server cannot be reached, the lease expires on its own."""
        client = self._client or await self._connect()
        try:
            await client.release_concurrency_slots_with_lease(lease)
        except httpx.HTTPError as error:
            logger.warning(
                "could not release a shared concurrency slot (it expires in %.0f s): %s",
                self.lease_seconds,
                error,
            )

    async def aclose(self) -> None:
        await self._stack.aclose()
        self._client = None
