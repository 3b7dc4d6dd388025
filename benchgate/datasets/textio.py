"""How dataset and prediction readers open files: local or fsspec, with errors that name the line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import fsspec

from benchgate.errors import DatasetError


@contextmanager
def open_text(path: str, what: str = "dataset") -> Iterator[IO[str]]:
    """Open a local path or fsspec URL as UTF-8 text (.gz and friends decompressed by extension)."""
    try:
        with fsspec.open(path, "rt", encoding="utf-8", compression="infer") as handle:
            yield handle
    except FileNotFoundError as exc:
        raise DatasetError(f"{what} file not found: {path}") from exc
    except IsADirectoryError as exc:
        raise DatasetError(f"{what} path is a directory, not a file: {path}") from exc
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise DatasetError(f"cannot read {what} file {path}: {exc.strerror or exc}") from exc


def parse_json(text: str, where: str) -> Any:
    """One JSON document; syntax errors and hostile nesting become a DatasetError naming the place."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"{where}, line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg})"
        ) from exc
    except RecursionError:
        raise DatasetError(f"{where}: JSON nested too deeply to read") from None


def jsonl_objects(path: str, what: str = "dataset") -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line; anything but a JSON object is an error."""
    with open_text(path, what) as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            row = parse_json(line, f"{path}, line {lineno}")
            if not isinstance(row, dict):
                raise DatasetError(f"{path}, line {lineno}: expected a JSON object")
            yield lineno, row
