"""The result store: Parquet under one root, any fsspec URL, atomic writes.

Generations are also appended to a per-shard journal as each one finishes, so a SIGKILL loses at
most the requests in flight (on an object store, also one small batch: store/journal.py); the journal
becomes a Parquet part when the shard completes, and a reader treats leftover journals of killed runs
as data, counting a row found in both a part and a journal once.
"""

from __future__ import annotations

import asyncio
import fcntl
import io
import json
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, overload

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from benchgate import jsonio
from benchgate.errors import StoreError
from benchgate.settings import settings, store_root
from benchgate.spec.example import Example
from benchgate.store.journal import ChunkJournal, is_journal, orphan_chunks, parse_lines

if TYPE_CHECKING:  # pandas (0.25 s) is not imported at start-up (a run imports it ahead)
    import pandas as pd

logger = logging.getLogger("benchgate.store")

GENERATION_SCHEMA = pa.schema(
    [
        ("cache_key", pa.string()),
        ("benchmark_id", pa.string()),
        ("model_id", pa.string()),
        ("provider", pa.string()),
        ("model_name", pa.string()),
        ("params", pa.string()),
        ("dataset", pa.string()),
        ("dataset_revision", pa.string()),
        ("example_id", pa.string()),
        ("sample_index", pa.int32()),
        ("prompt", pa.string()),
        ("output", pa.string()),
        ("finish_reason", pa.string()),
        ("error", pa.string()),
        ("error_kind", pa.string()),
        ("reusable", pa.bool_()),
        ("latency_ms", pa.float64()),
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("created_at", pa.string()),
    ]
)
# What a reused generation needs; prompts and params stay on disk (they are most of a row's size).
REUSE_COLUMNS = [name for name in GENERATION_SCHEMA.names if name not in ("prompt", "params")]
EXAMPLE_SCHEMA = pa.schema(
    [
        ("example_id", pa.string()),
        ("messages", pa.string()),
        ("references", pa.string()),
        ("fields", pa.string()),
    ]
)


def partition_name(value: str) -> str:
    """A model id or task name as one path segment (ids may contain '/', e.g. org/model)."""
    return value.replace("/", "%2F")


class Store:
    def __init__(self, root: str | None = None) -> None:
        self.url = root or store_root()
        # No cached listings: other processes and machines write to the same directories.
        self.fs, self.root = fsspec.core.url_to_fs(self.url, use_listings_cache=False)
        self.is_local = isinstance(self.fs, LocalFileSystem)

    def path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    def write_bytes(self, path: str, data: bytes) -> None:
        """Write then rename, so a reader never sees half a file."""
        with self._writing(path) as handle:
            handle.write(data)

    @contextmanager
    def _writing(self, path: str) -> Iterator[Any]:
        """A temporary file renamed to `path` when complete; on failure (disk full) nothing is left.

        On an object store a rename is a copy and a delete, while one PUT is already atomic: the file
        is built in memory and PUT once.
        """
        if not self.is_local:
            buffer = io.BytesIO()
            yield buffer
            try:
                self.fs.pipe_file(path, buffer.getvalue())
            except OSError as error:
                raise StoreError(f"cannot write {path}: {error.strerror or error}") from None
            return
        temporary = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
            with self.fs.open(temporary, "wb") as handle:
                yield handle
            self.fs.mv(temporary, path)
        except OSError as error:
            with suppress(OSError):
                self.fs.rm(temporary)
            raise StoreError(f"cannot write {path}: {error.strerror or error}") from None

    def read_table(
        self, path: str, columns: list[str] | None = None, schema: pa.Schema | None = None
    ) -> pa.Table | None:
        """A Parquet file of the store, or None when it is unreadable: then it is moved aside, named.

        A truncated or garbage file (a crash mid-copy, a full disk, a hand edit) must not fail every
        later run: it goes to quarantine/ and whatever it held is regenerated or reported missing.
        `schema` reads a file of an older layout with the current columns (missing ones null). Both
        read through `ParquetFile`, which reads a file of many row groups (the examples file has one
        per 100 examples) for a third of the CPU of the dataset reader, and spares a cached rerun
        importing that reader (0.3 s before its first shard).
        """
        try:
            with self.fs.open(path, "rb") as handle:
                file = pq.ParquetFile(handle)
                if schema is None:
                    return file.read(columns=columns)
                return _conformed(file, schema, columns)
        except (pa.ArrowException, OSError) as error:
            if not self.fs.exists(path):
                raise
            self.quarantine(path, str(error))
            return None

    def quarantine(self, path: str, reason: str) -> str:
        """Move an unreadable file under quarantine/ (kept for inspection) and say so."""
        relative = path[len(self.root.rstrip("/")) + 1 :] if path.startswith(self.root) else path
        target = self.path("quarantine", f"{relative}.{uuid.uuid4().hex[:8]}")
        self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        self.fs.mv(path, target)
        logger.warning(
            "store: %s is unreadable (%s); moved to %s and will be regenerated", path, reason, target
        )
        return target

    def read_bytes(self, path: str) -> bytes:
        with self.fs.open(path, "rb") as handle:
            return handle.read()

    def exists(self, path: str) -> bool:
        return self.fs.exists(path)

    def _write_table(self, path: str, table: pa.Table, row_group_size: int | None = None) -> None:
        buffer = io.BytesIO()
        pq.write_table(table, buffer, row_group_size=row_group_size, compression="zstd")
        self.write_bytes(path, buffer.getvalue())

    @asynccontextmanager
    async def exclusive(self, *parts: str, poll_seconds: float = 0.2) -> AsyncIterator[None]:
        """Hold an exclusive lock on a store path, waiting for whoever holds it.

        Two runs of the same model x task on one store would otherwise ask the model twice for every
        item; the second waits, then reuses the first's answers. An advisory `flock`, released by the
        kernel when its holder dies; object stores have no such lock, so there it is a no-op.
        """
        if not self.is_local:
            yield
            return
        path = Path(self.path("locks", *parts) + ".lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as handle:
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await asyncio.sleep(poll_seconds)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # examples --------------------------------------------------------------------------------
    def examples_path(self, examples_digest: str) -> str:
        return self.path("examples", f"{examples_digest}.parquet")

    def write_examples(self, examples_digest: str, examples: Iterable[Example], shard_size: int) -> int:
        """Stream examples into one Parquet file with one row group per shard.

        Snappy, not zstd: a working file written before the first request and read back group by
        group during generation; at 50,000 examples zstd took 0.12 s to write and 0.12 s to read,
        snappy 0.04 and 0.05 s, for 1.3 MB instead of 0.8 MB."""
        count = 0
        with (
            self._writing(self.examples_path(examples_digest)) as handle,
            pq.ParquetWriter(handle, EXAMPLE_SCHEMA, compression="snappy") as writer,
        ):
            for batch in _batched(examples, shard_size):
                writer.write_table(_examples_table(batch))
                count += len(batch)
        return count

    def examples_readable(self, examples_digest: str) -> bool:
        """Whether the materialised examples exist and their footer reads; a corrupt file is quarantined."""
        path = self.examples_path(examples_digest)
        if not self.fs.exists(path):
            return False
        try:
            self.example_counts(examples_digest)
        except (pa.ArrowException, OSError) as error:
            self.quarantine(path, str(error))
            return False
        return True

    def example_counts(self, examples_digest: str) -> tuple[int, int]:
        """(examples, shards) from the Parquet footer, without reading the rows."""
        with self.fs.open(self.examples_path(examples_digest), "rb") as handle:
            metadata = pq.ParquetFile(handle).metadata
            return metadata.num_rows, metadata.num_row_groups

    def open_examples(self, examples_digest: str) -> ExampleFile:
        """The examples file held open for reading its row groups one by one."""
        return ExampleFile(self.fs.open(self.examples_path(examples_digest), "rb"))

    # generations -----------------------------------------------------------------------------
    def generations_dir(self, model_id: str, task: str) -> str:
        return self.path("generations", f"model={partition_name(model_id)}", f"task={partition_name(task)}")

    def read_generations(
        self, model_id: str, task: str, columns: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """Every stored generation row of one model x task: parts, and journals of shards in progress or
        killed. A row both in a part and a journal (a kill between the two writes) counts once, by
        (cache_key, created_at); one directory is listed, never the whole store."""
        directory = self.generations_dir(model_id, task)
        if not self.fs.exists(directory):
            return []
        wanted = list(dict.fromkeys([*columns, "cache_key", "created_at"])) if columns else None
        rows: list[dict[str, Any]] = []
        seen: set[tuple[Any, Any]] = set()
        done: set[str] = set()
        for _ in range(2):  # a journal removed under us: its part landed first, so list once more
            vanished = False
            for name in sorted(set(self.fs.ls(directory, detail=False)) - done):
                done.add(name)
                if name.endswith(".parquet"):
                    table = self.read_table(name, schema=GENERATION_SCHEMA, columns=wanted)
                    found = table.to_pylist() if table is not None else []
                elif is_journal(name):
                    try:
                        found = list(parse_lines(self.read_bytes(name)))
                    except FileNotFoundError:
                        vanished = True
                        continue
                else:
                    continue
                for row in found:
                    identity = (row.get("cache_key"), row.get("created_at"))
                    if identity not in seen:
                        seen.add(identity)
                        rows.append({c: row.get(c) for c in columns} if columns else row)
            if not vanished:
                break
        return rows

    def read_generation_columns(self, model_id: str, task: str, columns: list[str]) -> dict[str, list[Any]]:
        """`read_generations` as one list per column, without a dict per stored row (report.html's items
        at 50,000 items). At a run's end the directory holds Parquet parts whose rows are all distinct,
        read column-wise; journals, or a row stored twice (counted once), take `read_generations`."""
        directory = self.generations_dir(model_id, task)
        names = sorted(self.fs.ls(directory, detail=False)) if self.fs.exists(directory) else []
        if not any(is_journal(name) for name in names):
            wanted = list(dict.fromkeys([*columns, "cache_key", "created_at"]))
            found: dict[str, list[Any]] = {name: [] for name in wanted}
            for name in names:  # part by part: one part's Arrow buffers held at a time, not all
                if not name.endswith(".parquet"):
                    continue
                table = self.read_table(name, schema=GENERATION_SCHEMA, columns=wanted)
                if table is None:
                    continue
                for column in wanted:
                    found[column].extend(table.column(column).to_pylist())
            if len(set(zip(found["cache_key"], found["created_at"], strict=True))) == len(found["cache_key"]):
                return {name: found[name] for name in columns}
        rows = self.read_generations(model_id, task, columns)
        return {name: [row[name] for row in rows] for name in columns}

    def reusable_generations(self, model_id: str, task: str) -> dict[str, dict[str, Any]]:
        """Finished generations by cache key, the newest winning; errors are never reused."""
        reusable: dict[str, dict[str, Any]] = {}
        for row in self.read_generations(model_id, task, REUSE_COLUMNS):
            if row["error"] is None and row.get("reusable", True) is not False:
                current = reusable.get(row["cache_key"])
                if current is None or row["created_at"] > current["created_at"]:
                    reusable[row["cache_key"]] = row
        return reusable

    def generation_writer(self, model_id: str, task: str) -> GenerationWriter:
        return GenerationWriter(self, self.generations_dir(model_id, task))

    # scores and reports ----------------------------------------------------------------------
    def scores_path(self, benchmark_id: str, model_id: str, task: str) -> str:
        model, task = partition_name(model_id), partition_name(task)
        return self.path("scores", f"model={model}", f"task={task}", f"{benchmark_id}.parquet")

    def write_scores(self, benchmark_id: str, model_id: str, task: str, scores: pd.DataFrame) -> None:
        self._write_table(
            self.scores_path(benchmark_id, model_id, task), pa.Table.from_pandas(scores, preserve_index=False)
        )

    def read_scores(self, benchmark_id: str, model_id: str, task: str) -> pd.DataFrame | None:
        table = self.read_score_table(benchmark_id, model_id, task)
        return table.to_pandas() if table is not None else None

    def read_score_table(self, benchmark_id: str, model_id: str, task: str) -> pa.Table | None:
        """`read_scores` as Arrow, for readers that need no DataFrame."""
        path = self.scores_path(benchmark_id, model_id, task)
        return self.read_table(path) if self.fs.exists(path) else None

    def shard_scores_path(self, task: str, key: str) -> str:
        return self.path("score-cache", f"task={partition_name(task)}", f"{key}.parquet")

    def write_shard_scores(self, task: str, key: str, scores: pd.DataFrame) -> None:
        """Per-item scores of one shard, by content (run/evaluation.py `score_key`), for reruns to reuse."""
        self._write_table(
            self.shard_scores_path(task, key), pa.Table.from_pandas(scores, preserve_index=False)
        )

    def read_shard_scores(self, task: str, key: str) -> pd.DataFrame | None:
        path = self.shard_scores_path(task, key)
        if not self.fs.exists(path):
            return None
        table = self.read_table(path)
        return table.to_pandas() if table is not None else None

    def report_path(self, benchmark_id: str, name: str) -> str:
        return self.path("reports", benchmark_id, name)

    def read_report(self, benchmark_id: str) -> dict[str, Any] | None:
        path = self.report_path(benchmark_id, "report.json")
        if not self.fs.exists(path):
            return None
        try:
            return json.loads(self.read_bytes(path))
        except json.JSONDecodeError as error:
            raise StoreError(f"corrupt report {path}: {error}") from None


class ExampleFile:
    """An examples file held open: its footer (every row group's metadata) is parsed once, not per
    row group read, which at 500 row groups made reading them all quadratic. Shards' scoring threads
    read it too (`ShardExamples`): one read at a time."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self._parquet = pq.ParquetFile(handle)
        self._reading = threading.Lock()

    def read_group(self, group: int) -> list[Example]:
        with self._reading:
            rows = self._parquet.read_row_group(group).to_pylist()
        return [
            Example(
                r["example_id"],
                jsonio.loads(r["messages"]),
                jsonio.loads(r["references"]),
                json.loads(r["fields"]) if r["fields"] != "{}" else {},
            )
            for r in rows
        ]

    def read_groups(self, groups: Iterable[int]) -> list[Example]:
        """The examples of several row groups (a shard, or the whole file), in order."""
        return [example for group in groups for example in self.read_group(group)]

    def shard(self, groups: range) -> ShardExamples:
        """The examples of `groups`, read when first used."""
        return ShardExamples(self, groups)

    def close(self) -> None:
        self._parquet.close()
        self._handle.close()

    def __enter__(self) -> ExampleFile:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class ShardExamples(Sequence[Example]):
    """A shard's examples, read from its examples file the first time they are used. A shard whose
    scores are reused never needs them: a cached rerun of 5,000 items read them all for nothing."""

    def __init__(self, file: ExampleFile, groups: range) -> None:
        self._file, self._groups = file, groups
        self._examples: list[Example] | None = None
        self._reading = threading.Lock()

    def _read(self) -> list[Example]:
        with self._reading:
            if self._examples is None:
                self._examples = self._file.read_groups(self._groups)
            return self._examples

    @overload
    def __getitem__(self, index: int) -> Example: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Example]: ...

    def __getitem__(self, index: int | slice) -> Example | Sequence[Example]:
        return self._read()[index]

    def __iter__(self) -> Iterator[Example]:
        return iter(self._read())

    def __len__(self) -> int:
        return len(self._read())


class GenerationWriter:
    """Journals finished generations (locally at the end of the event-loop turn they arrived in, on
    an object store in small batches); `close` turns them into a Parquet part."""

    # Writers of this process with chunks still to be discarded: alive, however long they were silent
    # (a shard generated ahead waits for its task), so no other writer here folds their chunks.
    _open_chunk_writers: ClassVar[set[str]] = set()
    # Writers close on threads (ShardProducer.take): two folding the same leftovers at once would each
    # write them as a part. One at a time, the second finds them gone.
    _folding: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, store: Store, directory: str) -> None:
        self.store = store
        self.directory = directory
        self.writer_id = uuid.uuid4().hex
        self.stem = f"{directory}/part-{self.writer_id}"
        self.part_path = f"{self.stem}.parquet"
        self.journal_path = f"{self.stem}.journal"
        self.rows: list[dict[str, Any]] = []
        self._journal: io.FileIO | None = None
        self._lines: list[bytes] = []  # arrived this event-loop turn, not yet written
        self._failure: StoreError | None = None
        self._chunks: ChunkJournal | None = None
        if store.is_local:
            store.fs.makedirs(directory, exist_ok=True)
            # Unbuffered: each write(2) goes into the page cache, which a SIGKILL cannot lose,
            # without a buffer's and fsspec's layers per item (5% of a run's client CPU).
            self._journal = io.FileIO(self.journal_path, "ab")
        else:
            options = settings()
            self._chunks = ChunkJournal(
                store.fs, self.stem, options.journal_batch_rows, options.journal_batch_seconds
            )
            self._open_chunk_writers.add(self.writer_id)

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if self._chunks is not None:
            self._chunks.append(row)
        if self._journal is not None:
            if self._failure is not None:
                raise self._failure
            self._lines.append(jsonio.dumps(row))
            if len(self._lines) == 1:
                self._write_after_this_turn()

    def _write_after_this_turn(self) -> None:
        """The answers that arrive in one event-loop turn (a dozen at 6,000 a second) are written
        together as it ends: one write(2) instead of one each, 12 µs apiece. A SIGKILL loses only
        what is in flight, as before: answers whose turn has not ended are still being read."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # outside an event loop: at once
            self._write_lines()
        else:
            loop.call_soon(self._write_lines)

    def _write_lines(self) -> None:
        if not self._lines or self._journal is None:
            return
        data = memoryview(b"\n".join(self._lines) + b"\n")
        self._lines = []
        try:
            while data:  # a regular file takes it whole, short of an error
                data = data[self._journal.write(data) :]
        except OSError as error:  # raised by the next append (close writes the rows' part regardless)
            self._failure = StoreError(f"cannot write {self.journal_path}: {error.strerror or error}")

    def close(self) -> None:
        self._write_lines()
        try:
            if self.rows:
                self.store._write_table(self.part_path, generation_table(self.rows))
        except BaseException:
            if self._chunks is not None:  # what the part could not hold stays journaled, to be folded
                self._chunks.flush()
            raise
        finally:
            self._open_chunk_writers.discard(self.writer_id)  # done writing, whichever way it went
        if self._journal is not None:
            self._journal.close()
            self.store.fs.rm(self.journal_path)
        if self._chunks is not None:
            self._chunks.discard()
            with self._folding:
                self._fold_orphans()

    def _fold_orphans(self) -> None:
        """Chunks of killed writers of this model x task become a Parquet part, then are removed.

        The part is written before any chunk is removed, under a new name, so a writer that was only
        slow, or a second writer folding the same chunks, costs a duplicate that readers count once.
        A writer killed after writing its own part and before removing its chunks left rows the part
        already holds: those chunks are only removed.
        """
        try:
            # Who is live is read before the listing: a writer that leaves the set has written its
            # part, so the listing shows that part (writers close on threads, see ShardProducer.take).
            live = {self.writer_id, *self._open_chunk_writers}  # its own chunks may still be listed
            entries = self.store.fs.ls(self.directory, detail=True)
            present = {entry["name"].rsplit("/", 1)[-1] for entry in entries}
            orphans = orphan_chunks(entries, live, settings().journal_orphan_seconds)
            for writer, names in orphans.items():
                if f"part-{writer}.parquet" in present:
                    self.store.fs.rm(names)
                    continue
                rows: list[dict[str, Any]] = []
                for name in names:
                    with suppress(FileNotFoundError):  # folded by another writer meanwhile
                        rows.extend(parse_lines(self.store.read_bytes(name)))
                if rows:
                    table = generation_table(rows)
                    self.store._write_table(f"{self.directory}/part-{uuid.uuid4().hex}.parquet", table)
                self.store.fs.rm(names)
        except (OSError, StoreError) as error:  # leftovers stay readable data: a later writer folds them
            logger.warning("store: cannot fold leftover journal chunks in %s: %s", self.directory, error)


def _typed(column: pa.ChunkedArray, type_: pa.DataType) -> pa.ChunkedArray:
    """`column` as `type_`; cast only when an older layout stored another type: a cast imports
    pyarrow.compute (65 ms), which a rerun's generation process otherwise never needs."""
    return column if column.type == type_ else column.cast(type_)


def _conformed(file: pq.ParquetFile, schema: pa.Schema, columns: list[str] | None) -> pa.Table:
    """`columns` of `schema` (all by default) from `file`: each cast to the schema's type, null where
    the file has no such column."""
    fields = [schema.field(name) for name in (columns or schema.names)]
    present = set(file.schema_arrow.names)
    table = file.read(columns=[field.name for field in fields if field.name in present])
    arrays = [
        _typed(table.column(field.name), field.type)
        if field.name in present
        else pa.nulls(file.metadata.num_rows, field.type)
        for field in fields
    ]
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def generation_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Generation rows as a table of the stored schema, column by column (`_column`); keys outside the
    schema are left out. Each name is read from the schema once: `Field.name` makes a new str on every
    access, which per row was almost half of this (15 of 33 ms for a shard of 6,250 rows)."""
    fields = zip(GENERATION_SCHEMA.names, GENERATION_SCHEMA.types, strict=True)
    return pa.Table.from_arrays(
        [_column([row.get(name) for row in rows], type_) for name, type_ in fields], schema=GENERATION_SCHEMA
    )


def _examples_table(batch: list[Example]) -> pa.Table:
    """One row group of the examples file. `fields` keeps the standard library's encoding: a
    dataset's dates and other values become text through `str`, as they always have (most examples
    have none: 3 µs each to encode `{}`)."""
    columns = [
        [e.example_id.encode() for e in batch],
        [jsonio.dumps(e.messages) for e in batch],
        [jsonio.dumps(e.references) for e in batch],
        [_fields_json(e.fields) if e.fields else b"{}" for e in batch],
    ]
    return pa.Table.from_arrays([_utf8_column(values) for values in columns], schema=EXAMPLE_SCHEMA)


def _fields_json(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, ensure_ascii=False, default=str).encode()


_NUMPY_TYPES: dict[pa.DataType, type[np.generic]] = {
    pa.int32(): np.int32,
    pa.int64(): np.int64,
    pa.float64(): np.float64,
    pa.bool_(): np.bool_,
}


def _column(values: list[Any], type_: pa.DataType) -> pa.Array:
    """A column of Python values (None is null) laid straight into Arrow buffers. Converting Python
    objects instead (`pa.array`, `Table.from_pydict`) makes pyarrow import pandas: 0.25-0.4 s in which
    the generation process's event loop, writing its first Parquet part, read no answer."""
    nulls = values.count(None)
    validity = None
    if nulls:
        present = np.array([value is not None for value in values], dtype=np.bool_)
        validity = pa.py_buffer(np.packbits(present, bitorder="little"))
    if pa.types.is_string(type_):
        if nulls:
            return _utf8_column([b"" if v is None else v.encode() for v in values], validity, nulls)
        return _utf8_column(list(map(str.encode, values)))
    filled = np.array([0 if v is None else v for v in values] if nulls else values, dtype=_NUMPY_TYPES[type_])
    data = np.packbits(filled, bitorder="little") if pa.types.is_boolean(type_) else filled
    return pa.Array.from_buffers(type_, len(values), [validity, pa.py_buffer(data)], nulls)


def _utf8_column(values: list[bytes], validity: pa.Buffer | None = None, nulls: int = 0) -> pa.Array:
    """A string column of encoded values (b"" where `validity` says null), without conversion; its
    32-bit offsets are checked here, as a cast would (which imports pyarrow.compute, 65 ms)."""
    offsets = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum([len(value) for value in values], out=offsets[1:])
    if offsets[-1] > np.iinfo(np.int32).max:
        raise pa.ArrowCapacityError(f"{offsets[-1]} bytes of text in one row group's column (2 GiB at most)")
    data, ends = pa.py_buffer(b"".join(values)), pa.py_buffer(offsets.astype(np.int32))
    return pa.StringArray.from_buffers(len(values), ends, data, validity, nulls)


def _batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
