"""What one HTTP attempt came to: types the transport (connections.py, aiohttp) and the provider
(http.py) share. They import nothing, so the provider classes load without the transport."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Answer:
    """A response read to its end."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class Failure:
    """One retryable attempt that did not work, kept for the final message."""

    cause: str
    status: int | None = None
    retry_after: float | None = None
    timed_out: bool = False
    abandoned: bool = False  # the server may still be working on it (it may have the whole request)
