"""The output files by name: each renders from the typed report, and is written whole or not at all.

report.json and report.md are written with the report; gate.json and junit.xml by the gate, from the
report's ``gate``. Adding a format is one entry in FORMATS.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from benchgate.report.junit import render_junit
from benchgate.report.markdown import render_markdown
from benchgate.spec.report import GateDecision, Report


@dataclass(frozen=True)
class OutputFormat:
    filename: str
    render: Callable[[Report], str]
    gated: bool = False  # renders the report's gate, so the gate writes it


def _gate(report: Report) -> GateDecision:
    if report.gate is None:
        raise ValueError(f"report {report.benchmark_id} has no gate decision")
    return report.gate


def _gate_json(report: Report) -> str:
    gate = {"benchmarkId": report.benchmark_id, "name": report.name, **_gate(report).to_dict()}
    return json.dumps(gate, indent=2, allow_nan=False) + "\n"


FORMATS: dict[str, OutputFormat] = {
    output.filename: output
    for output in (
        OutputFormat("report.json", Report.to_json),
        OutputFormat("report.md", render_markdown),
        OutputFormat("gate.json", _gate_json, gated=True),
        OutputFormat("junit.xml", lambda report: render_junit(_gate(report), report), gated=True),
    )
}
REPORT_FILES = tuple(name for name, output in FORMATS.items() if not output.gated)
GATE_FILES = tuple(name for name, output in FORMATS.items() if output.gated)


def write_outputs(out_dir: Path, report: Report, filenames: Iterable[str]) -> dict[str, str]:
    """Render and write the named files into out_dir; returns their texts by file name."""
    out_dir.mkdir(parents=True, exist_ok=True)
    texts = {name: FORMATS[name].render(report) for name in filenames}
    for name, text in texts.items():
        write_atomic(out_dir / name, text)
    return texts


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write beside the target, then rename: a reader never sees half a file."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode() if isinstance(text, str) else text)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
