"""CNN/DailyMail reader for the formats the dataset circulates in: JSONL, CSV and Parquet."""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from typing import Any

import fsspec

from benchgate.datasets.textio import jsonl_objects, open_text
from benchgate.errors import DatasetError

_COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst")
_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet"}


def _format_of(path: str) -> str:
    name = path.lower()
    for suffix in _COMPRESSIONS:
        name = name.removesuffix(suffix)
    for suffix, fmt in _FORMATS.items():
        if name.endswith(suffix):
            return fmt
    raise DatasetError(f"{path}: unknown CNN/DailyMail format; expected a .jsonl, .csv or .parquet file")


def derived_id(article: str) -> str:
    """Stable id for a row without one: "cnndm-" + the first 16 hex digits of sha1(article, UTF-8).

    Content-derived (not positional) so that re-ordering or sub-setting a file keeps every id; the prefix
    keeps it apart from HF's 40-hex URL-hash ids.
    """
    return "cnndm-" + hashlib.sha1(article.encode("utf-8")).hexdigest()[:16]


def _record(row: dict[str, Any], where: str) -> dict[str, str]:
    for field in ("article", "highlights"):
        if not isinstance(row.get(field), str):
            raise DatasetError(f"{where}: field {field!r} is missing or not a string")
    row_id = row.get("id")
    if row_id is None or row_id == "":
        row_id = derived_id(row["article"])
    return {"id": str(row_id), "article": row["article"], "highlights": row["highlights"]}


def _read_jsonl(path: str) -> Iterator[dict[str, str]]:
    for lineno, row in jsonl_objects(path):
        yield _record(row, f"{path}, line {lineno}")


def _read_csv(path: str) -> Iterator[dict[str, str]]:
    with open_text(path) as handle:
        reader = csv.DictReader(handle)
        missing = {"article", "highlights"} - set(reader.fieldnames or ())
        if missing:
            raise DatasetError(f"{path}: CSV header lacks column(s) {sorted(missing)}")
        for row in reader:
            yield _record(row, f"{path}, line {reader.line_num}")


def _read_parquet(path: str) -> Iterator[dict[str, str]]:
    try:
        with fsspec.open(path, "rb") as handle:
            import pyarrow.parquet as pq  # numpy and Arrow: only for Parquet copies

            parquet = pq.ParquetFile(handle)
            names = set(parquet.schema_arrow.names)
            missing = {"article", "highlights"} - names
            if missing:
                raise DatasetError(f"{path}: Parquet schema lacks column(s) {sorted(missing)}")
            columns = [c for c in ("id", "article", "highlights") if c in names]
            row_number = 0
            for batch in parquet.iter_batches(columns=columns):
                for row in batch.to_pylist():
                    yield _record(row, f"{path}, row {row_number}")
                    row_number += 1
    except FileNotFoundError as exc:
        raise DatasetError(f"dataset file not found: {path}") from exc


def read_cnn_dailymail(path: str) -> Iterator[dict[str, str]]:
    """Yield {"id", "article", "highlights"} rows in file order, streaming (Parquet by row group).

    Columns/fields: article, highlights (one highlight per line) and an optional id; a row without an
    id gets `derived_id(article)`. Errors name the file and the line (or Parquet row).
    """
    readers = {"jsonl": _read_jsonl, "csv": _read_csv, "parquet": _read_parquet}
    return readers[_format_of(path)](path)
