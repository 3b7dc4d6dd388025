"""Rows of a custom task's dataset: JSONL, JSON, CSV/TSV or Parquet (local or fsspec, .gz and friends),
a `datasets` dataset saved to disk (a directory), or `hf:<repo>[@revision]` from the Hugging Face hub.

Rows are streamed (Parquet by record batch, text formats line by line) so a full-size dataset is never
held; only a `.json` document is read whole, because JSON has no streaming form in the standard
library (use JSONL for big files). A row that cannot be read (a malformed JSONL line) is yielded as a
`BadRow` in its place rather than raised, so one bad line is an errored item, not a failed run.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import PurePosixPath
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from benchgate.datasets.files import arrow_revision, file_revision
from benchgate.datasets.hub import load_hub_rows
from benchgate.datasets.textio import open_text
from benchgate.errors import DatasetError

HUB_PREFIX = "hf:"
_COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst")
_FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
}
PARQUET_BATCH_ROWS = 1024


@dataclass(frozen=True)
class BadRow:
    """A row that could not be read; `where` is its line or row number, `message` what is wrong."""

    where: str
    message: str


Row = dict[str, Any]


def parse_hub(location: str) -> tuple[str, str | None]:
    """'hf:owner/name@rev' -> ('owner/name', 'rev')."""
    repo, _, revision = location.removeprefix(HUB_PREFIX).partition("@")
    return repo, revision or None


def file_format(location: str) -> str | None:
    name = location.lower()
    for suffix in _COMPRESSIONS:
        name = name.removesuffix(suffix)
    return next((fmt for suffix, fmt in _FORMATS.items() if name.endswith(suffix)), None)


class Table:
    """One dataset location, readable any number of times (few-shot rows and items are two passes)."""

    def __init__(
        self, location: str, *, split: str | None = None, subset: str | None = None, task_name: str = ""
    ) -> None:
        self.location = location
        self.split = split
        self.subset = subset
        self.task_name = task_name

    @property
    def is_hub(self) -> bool:
        return self.location.startswith(HUB_PREFIX)

    @property
    def name(self) -> str:
        """What the report calls the dataset: the hub repo or the file's name (not its full path)."""
        if self.is_hub:
            return self.location
        return PurePosixPath(self.location.rstrip("/")).name or self.location

    def problems(self) -> list[str]:
        """What is wrong with the location itself, before reading it."""
        if self.is_hub:
            repo, _ = parse_hub(self.location)
            if not repo or repo.count("/") > 1:
                return [f"expected hf:<owner>/<name>[@revision], got {self.location!r}"]
            return []
        if not self._is_directory() and file_format(self.location) is None:
            return [
                f"unknown format of {self.location!r}: expected .jsonl, .json, .csv, .tsv or .parquet "
                "(optionally .gz, .bz2, .xz, .zst), a dataset directory saved with `datasets`, "
                "or hf:<repo>[@revision]"
            ]
        return []

    @cached_property
    def revision(self) -> str:
        if self.is_hub:
            return self._hub()[0]
        if self._is_directory():
            return arrow_revision(self._disk_dataset.data)
        return file_revision(self.location)

    def rows(self) -> Iterator[Row | BadRow]:
        """The rows in order, streamed; raises DatasetError only when the dataset as a whole is unreadable."""
        if self.is_hub:
            return self._hub()[1]
        if self._is_directory():
            return iter(self._disk_dataset)
        readers = {
            "jsonl": _read_jsonl,
            "json": _read_json,
            "csv": _read_csv,
            "tsv": _read_tsv,
            "parquet": _read_parquet,
        }
        fmt = file_format(self.location)
        if fmt is None:
            raise DatasetError(self.problems()[0])
        return readers[fmt](self.location)

    def _hub(self) -> tuple[str, Iterator[Row]]:
        repo, revision = parse_hub(self.location)
        if not self.split:
            raise DatasetError(f"{self.location}: give the `split` to read from the hub (e.g. test)")
        return load_hub_rows(
            repo, subset=self.subset, split=self.split, revision=revision, task_name=self.task_name
        )

    def _is_directory(self) -> bool:
        if self.is_hub:
            return False
        try:
            fs, path = fsspec.core.url_to_fs(self.location)
            return fs.isdir(path)
        except (OSError, ValueError):
            return False

    @cached_property
    def _disk_dataset(self) -> Any:
        try:
            import datasets

            loaded = datasets.load_from_disk(self.location)
        except (OSError, ValueError) as error:
            raise DatasetError(f"cannot load the saved dataset {self.location}: {error}") from None
        if isinstance(loaded, datasets.DatasetDict):
            splits = list(loaded)
            split = self.split or (splits[0] if len(splits) == 1 else None)
            if split not in loaded:
                raise DatasetError(
                    f"{self.location}: give a `split` of this saved dataset (splits: {', '.join(splits)})"
                )
            return loaded[split]
        return loaded


def _json_row(line: str, where: str) -> Row | BadRow:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        return BadRow(where, f"not valid JSON ({error.msg})")
    except RecursionError:
        return BadRow(where, "JSON nested too deeply to read")
    return (
        row if isinstance(row, dict) else BadRow(where, f"expected a JSON object, got {type(row).__name__}")
    )


def _read_jsonl(path: str) -> Iterator[Row | BadRow]:
    with open_text(path) as handle:
        for lineno, line in enumerate(handle, start=1):
            if line.strip():
                yield _json_row(line, f"line {lineno}")


def _read_json(path: str) -> Iterator[Row | BadRow]:
    """A JSON array of objects, or an object holding one (e.g. {"data": [...]}); JSON Lines also accepted."""
    with open_text(path) as handle:
        text = handle.read()
    try:
        document = json.loads(text)
    except RecursionError:
        raise DatasetError(f"{path}: JSON nested too deeply to read") from None
    except json.JSONDecodeError as error:
        if error.msg != "Extra data":  # several documents, one per line: JSON Lines named .json
            raise DatasetError(f"{path}, line {error.lineno}: not valid JSON ({error.msg})") from None
        for lineno, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                yield _json_row(line, f"line {lineno}")
        return
    if isinstance(document, dict):
        lists = [value for value in document.values() if isinstance(value, list)]
        if len(lists) != 1:
            raise DatasetError(f"{path}: expected a JSON array of objects (or an object holding one)")
        document = lists[0]
    if not isinstance(document, list):
        raise DatasetError(f"{path}: expected a JSON array of objects, got {type(document).__name__}")
    for index, row in enumerate(document):
        yield row if isinstance(row, dict) else BadRow(f"item {index}", "expected a JSON object")


def _read_delimited(path: str, delimiter: str) -> Iterator[Row | BadRow]:
    with open_text(path) as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        for row in reader:
            if None in row:
                yield BadRow(f"line {reader.line_num}", "more cells than header columns")
            else:
                yield row


def _read_csv(path: str) -> Iterator[Row | BadRow]:
    return _read_delimited(path, ",")


def _read_tsv(path: str) -> Iterator[Row | BadRow]:
    return _read_delimited(path, "\t")


def _read_parquet(path: str) -> Iterator[Row | BadRow]:
    try:
        with fsspec.open(path, "rb") as handle:
            for batch in pq.ParquetFile(handle).iter_batches(batch_size=PARQUET_BATCH_ROWS):
                yield from batch.to_pylist()
    except FileNotFoundError:
        raise DatasetError(f"dataset file not found: {path}") from None
    except (OSError, pa.ArrowException) as error:
        raise DatasetError(f"{path}: not a readable Parquet file ({error})") from None
