"""Deterministic seeded subsets: `limit: N` must not be a biased prefix (CNN/DailyMail is CNN-first)."""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def _rank(seed: int, key: str) -> bytes:
    return hashlib.sha256(f"{seed}:{key}".encode()).digest()


def seeded_sample(items: Iterable[T], limit: int | None, seed: int, key: Callable[[T], str]) -> Iterator[T]:
    """Keep the `limit` items with the smallest seeded hash of their id, in their original order.

    Streaming with a bounded heap, so a full-size dataset is never held; the choice depends only
    on the ids and the seed, not on file order, so the same request always evaluates the same items.
    """
    if limit is None:
        yield from items
        return
    heap: list[tuple[bytes, int, T]] = []
    for position, item in enumerate(items):
        entry = (_negate(_rank(seed, key(item))), position, item)
        if len(heap) < limit:
            heapq.heappush(heap, entry)
        elif entry[0] > heap[0][0]:
            heapq.heapreplace(heap, entry)
    for _, _, item in sorted(heap, key=lambda e: e[1]):
        yield item


def _negate(digest: bytes) -> bytes:
    """Invert byte order so a min-heap keeps the smallest ranks."""
    return bytes(255 - b for b in digest)
