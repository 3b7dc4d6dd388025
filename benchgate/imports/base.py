"""What every importer returns, and how a file is looked at to tell its format.

An importer turns one log of another tool into runs (one per model x task) of per-item scores keyed by a
stable item id, which is all the gate's paired tests need; the tool's own aggregates travel along so the
report can show them beside benchgate's and a test can check one against the other.
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import pandas as pd

from benchgate.errors import DatasetError

Kind = Literal["zip", "json", "jsonl", "other"]


@dataclass(frozen=True)
class Content:
    """A file as format detection sees it: a zip's member names, a JSON document, or the first record
    of a JSON-lines file (parsed once, so a large JSON log is not read twice)."""

    path: Path
    kind: Kind
    value: Any = None


def sniff(path: Path) -> Content:
    """Look at a file without knowing its format; unreadable files are errors, unknown ones `other`."""
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return Content(path, "zip", archive.namelist())
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return Content(path, "other")  # binary, and no zip: no format read here
    except OSError as error:
        raise DatasetError(f"{path}: cannot read: {error}") from None
    try:
        return Content(path, "json", json.loads(text))
    except json.JSONDecodeError:
        pass
    first = next((line for line in text.splitlines() if line.strip()), "")
    try:
        return Content(path, "jsonl", json.loads(first))
    except json.JSONDecodeError:
        return Content(path, "other")


@dataclass
class ImportedRun:
    """One model's per-item results on one task, as a tool recorded them."""

    source: str  # the file the items came from
    tool: str  # the tool and its version, e.g. "lm-eval 0.4.13"
    model: str
    task: str
    dataset: str
    scores: pd.DataFrame  # example_id, then one float column per metric (NaN: the item has no value)
    reported: dict[str, float] = field(default_factory=dict)  # the tool's own aggregate per metric
    higher_is_better: dict[str, bool] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # metrics without one number per item, and why


class Reader(Protocol):
    """One tool's log format: `formats` says what it reads (for the unknown-format error)."""

    formats: str

    def detects(self, content: Content) -> bool: ...

    def read(self, content: Content) -> list[ImportedRun]: ...


def score_frame(source: Path, items: list[tuple[str, dict[str, float]]], metrics: list[str]) -> pd.DataFrame:
    """Per-item scores in the store's shape; an id given twice is an error (items could not be paired)."""
    seen: set[str] = set()
    for example_id, _ in items:
        if example_id in seen:
            raise DatasetError(f"{source}: item id {example_id!r} occurs twice; items cannot be paired")
        seen.add(example_id)
    return pd.DataFrame(
        {
            "example_id": pd.Series([example_id for example_id, _ in items], dtype=str),
            **{m: pd.Series([values.get(m, math.nan) for _, values in items], dtype=float) for m in metrics},
        }
    )


def as_number(value: Any) -> float | None:
    """A per-item value as a number, or None when it is not one (a list, a mapping, text)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    return None
