"""Inspect AI eval logs of log format version 2 (Inspect 0.3.x): `.eval` archives and `.json` logs.

Read as the documented format rather than through inspect_ai, so the base install stays small. A `.json`
log is one document (eval, results, samples); a `.eval` log is a zip of JSON members (header.json with
eval and results, samples/<id>_epoch_<n>.json). Recent Inspect versions compress the members with
zstandard (zip method 93), which Python's zipfile reads only from 3.14: those are inflated with pyarrow's
zstd codec, already a dependency.

Each scorer becomes a metric named after it, its per-item values converted as Inspect converts them for
its metrics: C(orrect) 1, P(artial) 0.5, I(ncorrect) and N(o answer) 0, yes/true 1, no/false 0,
numbers (and numeric text) kept. The item id is the sample id, with `#<epoch>` after it for every epoch
after the first, so runs with different epoch counts still pair on their first.
"""

from __future__ import annotations

import json
import math
import struct
import zipfile
from pathlib import Path
from typing import Any

import pyarrow as pa

from benchgate.errors import DatasetError
from benchgate.imports.base import Content, ImportedRun, as_number, score_frame

LOG_VERSION = 2
ZIP_ZSTANDARD = 93
HEADER, JOURNAL_START = "header.json", "_journal/start.json"
LETTERS = {"C": 1.0, "P": 0.5, "I": 0.0, "N": 0.0}  # Inspect's CORRECT, PARTIAL, INCORRECT, NOANSWER
WORDS = {"yes": 1.0, "true": 1.0, "no": 0.0, "false": 0.0}
MEAN_METRICS = ("accuracy", "mean")  # the aggregate that is the mean of the per-item values


class InspectReader:
    formats = f"Inspect AI eval logs, log format version {LOG_VERSION} (Inspect 0.3.x; .eval or .json)"

    def detects(self, content: Content) -> bool:
        if content.kind == "zip":
            return HEADER in content.value or JOURNAL_START in content.value
        value = content.value
        return content.kind == "json" and isinstance(value, dict) and isinstance(value.get("eval"), dict)

    def read(self, content: Content) -> list[ImportedRun]:
        path = content.path
        if content.kind == "zip":
            if HEADER not in content.value:
                raise DatasetError(
                    f"{path}: an unfinished Inspect log (no {HEADER}); only finished evals are read"
                )
            with zipfile.ZipFile(path) as archive:
                log = _member(path, archive, HEADER)
                _check(path, log)
                names = [n for n in content.value if n.startswith("samples/") and n.endswith(".json")]
                samples = [_member(path, archive, name) for name in names]
        else:
            log = content.value
            _check(path, log)
            samples = log.get("samples") or []
        if not samples:
            raise DatasetError(
                f"{path}: no samples in the Inspect log (was it written with --no-log-samples?)"
            )
        return [_run(path, log, samples)]


def _check(path: Path, log: Any) -> None:
    """Only logs of the version read, of evals that finished: partial logs would gate on partial data."""
    version = log.get("version") if isinstance(log, dict) else None
    if version != LOG_VERSION:
        raise DatasetError(
            f"{path}: Inspect log format version {version}; "
            f"benchgate reads version {LOG_VERSION} (Inspect 0.3.x)"
        )
    if log.get("status") != "success":
        raise DatasetError(
            f"{path}: Inspect log of status {log.get('status')!r}; only successful evals are read"
        )


def _member(path: Path, archive: zipfile.ZipFile, name: str) -> Any:
    info = archive.getinfo(name)
    try:
        data = _zstd_member(path, info) if info.compress_type == ZIP_ZSTANDARD else archive.read(info)
        return json.loads(data)
    except (OSError, ValueError, NotImplementedError, zipfile.BadZipFile, pa.ArrowException) as error:
        raise DatasetError(f"{path}: cannot read {name}: {error}") from None


def _zstd_member(path: Path, info: zipfile.ZipInfo) -> bytes:
    """A zstd-compressed member's bytes: its local header says where the data starts."""
    with path.open("rb") as handle:
        handle.seek(info.header_offset)
        header = handle.read(30)
        if header[:4] != b"PK\x03\x04":
            raise zipfile.BadZipFile(f"no local header for {info.filename}")
        name_length, extra_length = struct.unpack("<HH", header[26:30])
        handle.seek(info.header_offset + 30 + name_length + extra_length)
        raw = handle.read(info.compress_size)
    return bytes(pa.decompress(raw, decompressed_size=info.file_size, codec="zstd", asbytes=True))


def _value(value: Any) -> float | None:
    """Inspect's value_to_float for one per-item value; None where it cannot convert (lists, mappings)."""
    if isinstance(value, str):
        if value in LETTERS:
            return LETTERS[value]
        if value.lower() in WORDS:
            return WORDS[value.lower()]
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return as_number(value)


def _run(path: Path, log: dict[str, Any], samples: list[dict[str, Any]]) -> ImportedRun:
    spec = log["eval"]
    order = {str(sample_id): n for n, sample_id in enumerate(spec.get("dataset", {}).get("sample_ids") or [])}
    samples = sorted(samples, key=lambda s: (order.get(str(s.get("id")), len(order)), s.get("epoch", 1)))
    items: list[tuple[str, dict[str, float]]] = []
    metrics: list[str] = []
    skipped: dict[str, str] = {}
    for sample in samples:
        if sample.get("id") is None:
            raise DatasetError(f"{path}: a sample without an id; items cannot be paired")
        epoch = int(sample.get("epoch") or 1)
        example_id = str(sample["id"]) if epoch == 1 else f"{sample['id']}#{epoch}"
        values: dict[str, float] = {}
        for scorer, score in (sample.get("scores") or {}).items():
            if scorer not in metrics:
                metrics.append(scorer)
            number = _value(score.get("value") if isinstance(score, dict) else None)
            if number is None:
                skipped[scorer] = f"the value for item {example_id} is not one number"
            else:
                values[scorer] = number
        items.append((example_id, values))
    kept = [m for m in metrics if m not in skipped]
    reported = {}
    for entry in (log.get("results") or {}).get("scores") or []:
        found = [entry["metrics"][m]["value"] for m in MEAN_METRICS if m in entry.get("metrics", {})]
        if entry.get("name") in kept and found and as_number(found[0]) is not None:
            reported[entry["name"]] = float(found[0])
    dataset = spec.get("dataset") or {}
    return ImportedRun(
        source=str(path),
        tool=f"inspect-ai {(spec.get('packages') or {}).get('inspect_ai', 'unknown')}",
        model=str(spec["model"]),
        task=str(spec["task"]),
        dataset=str(dataset.get("name") or spec["task"]),
        scores=score_frame(path, items, kept),
        reported=reported,
        higher_is_better=dict.fromkeys(kept, True),
        skipped=[f"{metric}: {why}" for metric, why in sorted(skipped.items())],
    )
