"""`benchgate import`: other tools' per-item results stored as a benchmark, so `benchgate gate` gates them.

The format index: one reader module per tool's log format, each imported only to identify or read a
file. A file's format is told by its content, not its name. Adding a format is one module with a
`Reader` (benchgate/imports/base.py), one line in IMPORTERS and its test against logs the tool wrote.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from benchgate.errors import DatasetError
from benchgate.imports.base import ImportedRun, Reader, sniff
from benchgate.imports.benchmark import write_benchmark
from benchgate.spec.report import Report
from benchgate.store import Store

__all__ = ["IMPORTERS", "ImportedRun", "import_files", "read_file", "reader"]

IMPORTERS: dict[str, str] = {
    "lm-eval": "benchgate.imports.lm_eval:LmEvalReader",
    "inspect-ai": "benchgate.imports.inspect_ai:InspectReader",
}


def reader(name: str) -> Reader:
    module, _, attribute = IMPORTERS[name].partition(":")
    return cast(Reader, getattr(importlib.import_module(module), attribute)())


def read_file(path: Path) -> list[ImportedRun]:
    """The runs in one file, read by the first format that recognises it."""
    content = sniff(path)
    for name in IMPORTERS:
        candidate = reader(name)
        if candidate.detects(content):
            return candidate.read(content)
    known = "; ".join(reader(name).formats for name in IMPORTERS)
    raise DatasetError(f"{path}: not a log benchgate can import. It reads: {known}")


def import_files(paths: Sequence[Path], store: Store, name: str) -> tuple[Report, list[ImportedRun]]:
    """Read every file first, then write one benchmark with all their models and tasks."""
    return write_benchmark(store, name, [run for path in paths for run in read_file(path)])
