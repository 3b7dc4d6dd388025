"""Journals of shards in progress on an object store: small immutable chunks, since objects have no append.

A local journal gets one line per answer (an append and a flush). On S3 and the like every write is a
whole object, so answers are batched: one PUT per `journal_batch_rows` answers or `journal_batch_seconds`
seconds, whichever comes first, named `part-<writer>.journal-<seq>.jsonl`. A PUT is atomic, so a chunk
is whole or absent: a SIGKILL loses at most one batch (that many answers, all finished within the
last that many seconds) besides the requests in flight. Chunks are removed once the shard's Parquet
part holds their rows; the chunks of a killed writer are folded into a part of their own by the next
writer of that model x task to close, once they are `journal_orphan_seconds` old.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Collection, Iterable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

from benchgate.errors import StoreError

logger = logging.getLogger("benchgate.store")
_CHUNK = re.compile(r"part-(?P<writer>[0-9a-f]+)\.journal-(?P<seq>\d+)\.jsonl")


def is_journal(name: str) -> bool:
    """A local journal (`part-<writer>.journal`) or an object-store chunk of one."""
    return name.endswith(".journal") or _CHUNK.fullmatch(name.rsplit("/", 1)[-1]) is not None


def parse_lines(data: bytes) -> Iterator[dict[str, Any]]:
    for line in data.splitlines():
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            return  # the last line of a killed local writer may be cut short


class ChunkJournal:
    """Buffers a writer's answers and PUTs them as numbered chunks; thread-safe (a timer flushes too).

    The lock is held across the PUT, so a chunk being written is never missed by `discard`, and an
    answer waits for a timer's PUT rather than piling up unbounded.
    """

    def __init__(self, fs: Any, stem: str, max_rows: int, max_seconds: float) -> None:
        self._fs, self._stem = fs, stem
        self._max_rows, self._max_seconds = max_rows, max_seconds
        self._lock = threading.Lock()
        self._buffer: list[bytes] = []
        self._written: list[str] = []
        self._timer: threading.Timer | None = None
        self._failure: StoreError | None = None

    def append(self, row: dict[str, Any]) -> None:
        line = json.dumps(row, ensure_ascii=False).encode() + b"\n"
        with self._lock:
            if self._failure is not None:
                raise self._failure
            self._buffer.append(line)
            if len(self._buffer) >= self._max_rows:
                self._flush_locked()
            elif self._timer is None:
                self._timer = threading.Timer(self._max_seconds, self._flush_on_timer)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def discard(self) -> None:
        """Drop the buffer and delete the chunks written: the shard's Parquet part now holds their rows."""
        with self._lock:
            self._cancel_timer()
            self._buffer.clear()
            written, self._written = self._written, []
        try:
            if written:
                self._fs.rm(written)  # a missing chunk (folded in by another writer) is fine
        except OSError as error:  # leftovers are rows read twice and counted once: harmless
            logger.warning("store: cannot remove journal chunks of %s: %s", self._stem, error)

    def _flush_on_timer(self) -> None:
        with self._lock:
            try:
                self._flush_locked()
            except StoreError as error:  # raised by the next append
                self._failure = error

    def _flush_locked(self) -> None:
        self._cancel_timer()
        if not self._buffer:
            return
        path = f"{self._stem}.journal-{len(self._written):06d}.jsonl"
        try:
            self._fs.pipe_file(path, b"".join(self._buffer))
        except OSError as error:
            raise StoreError(f"cannot write {path}: {error.strerror or error}") from None
        self._buffer.clear()
        self._written.append(path)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def orphan_chunks(
    entries: Iterable[dict[str, Any]], live_writers: Collection[str], older_than_seconds: float
) -> dict[str, list[str]]:
    """Chunks of writers not in `live_writers` (writer ids: this process's open writers), by writer,
    whose newest chunk is older than the threshold: killed, most likely.

    A writer of another process still alive but silent that long is folded in too: its own part later
    repeats those rows, which readers count once, so a wrong guess costs storage, never an answer.
    """
    chunks: dict[str, list[str]] = {}
    newest: dict[str, datetime] = {}
    for entry in entries:
        name = entry["name"]
        match = _CHUNK.fullmatch(name.rsplit("/", 1)[-1])
        modified = entry.get("LastModified")
        if match is None or match["writer"] in live_writers or not isinstance(modified, datetime):
            continue
        writer = match["writer"]
        chunks.setdefault(writer, []).append(name)
        newest[writer] = max(modified, newest.get(writer, modified))
    cutoff = datetime.now(timezone.utc) - timedelta(seconds=older_than_seconds)
    return {writer: sorted(names) for writer, names in chunks.items() if newest[writer] < cutoff}
