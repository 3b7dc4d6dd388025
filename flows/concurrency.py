"""How runs proceed side by side: a bounded fan-out, and task runs kept out of tag concurrency."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from prefect.context import TagsContext

T = TypeVar("T")


async def bounded_gather(jobs: Iterable[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    """Cancels the siblings when one fails (asyncio.gather would leave them running)."""
    semaphore = asyncio.Semaphore(limit)

    async def run(job: Callable[[], Awaitable[T]]) -> T:
        async with semaphore:
            return await job()

    tasks = [asyncio.ensure_future(run(job)) for job in jobs]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for pending in tasks:
            pending.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


@contextmanager
def untagged_task_runs() -> Iterator[None]:
    """Task runs started inside carry none of the surrounding tags; flow runs keep them.

    Prefect asks the server for tag concurrency slots before every tagged task run: a database write
    per shard task, which SQLite answers with a 503 while it records the run's logs, and the client
    retries two seconds later. The tags are for people filtering model x task runs in the UI, and
    benchgate's request rates are held by its own limits, so its task runs do without them.
    """
    with TagsContext(current_tags=set()):
        yield
