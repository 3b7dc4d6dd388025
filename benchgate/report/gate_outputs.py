"""The gate's files: gate.json, junit.xml, and its verdict table for report.md and GitHub's step summary."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from benchgate.gate.evaluate import GateDecision, RuleVerdict
from benchgate.report.junit import render_junit

_ICONS = {"pass": "✅ pass", "fail": "❌ fail", "warn": "⚠️ warn", "inconclusive": "❔ inconclusive"}


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _num(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.4g}"


def _interval(verdict: RuleVerdict) -> str:
    if verdict.ci_low is None or verdict.ci_high is None:
        return ""
    level = f"{verdict.ci_level:.0%} " if verdict.ci_level else ""
    return f" ({level}CI {_num(verdict.ci_low)} to {_num(verdict.ci_high)})"


def _absolute(verdict: RuleVerdict) -> bool:
    return verdict.reference is None


def _observed(verdict: RuleVerdict) -> str:
    """Absolute rules' interval is the metric's own, so it sits with the value, not the difference."""
    text = ", ".join(f"{model} {_num(value)}" for model, value in verdict.observed.items())
    return text + _interval(verdict) if _absolute(verdict) else text


def _difference(verdict: RuleVerdict) -> str:
    text = _num(verdict.difference)
    if verdict.difference is not None and verdict.difference >= 0:
        text = "+" + text
    if _absolute(verdict):
        return f"{text} from {_num(verdict.threshold)}" if verdict.difference is not None else text
    return text + _interval(verdict)


def render_gate_markdown(decision: GateDecision) -> str:
    """A verdict table that reads well in report.md and in a GitHub step summary."""
    lines = [
        f"## Gate: {_ICONS.get(decision.decision, decision.decision)}",
        "",
        "| Verdict | Rule | Task | Observed | Difference | p | Reason |",
        "|---|---|---|---|---|---|---|",
    ]
    for v in decision.rules:
        p = _num(v.p_value) + (f" (Holm {_num(v.p_adjusted)})" if v.p_adjusted is not None else "")
        cells = [_ICONS.get(v.verdict, v.verdict), v.rule, v.task, _observed(v), _difference(v), p, v.reason]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    if not decision.rules:
        lines.append("| ✅ pass | (no rules) | | | | | |")
    if decision.deliveries:
        lines += ["", "Webhooks:", ""]
        for d in decision.deliveries:
            outcome = "delivered" if d.ok else f"FAILED ({d.error})"
            attempts = f"{d.attempts} attempt{'s' if d.attempts != 1 else ''}"
            lines.append(f"- {d.event} → {d.url}: {outcome}, {attempts}, delivery {d.delivery_id}")
    return "\n".join(lines) + "\n"


def _write_atomic(path: Path, text: str) -> None:
    """Write beside the target, then rename: a reader never sees half a file."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_gate_outputs(out_dir: Path, report: dict[str, Any], decision: GateDecision) -> None:
    """gate.json and junit.xml in out_dir (report.md, with the verdict table, goes to the step summary)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    gate = {"benchmarkId": report.get("benchmarkId"), "name": report.get("name"), **decision.to_dict()}
    _write_atomic(out_dir / "gate.json", json.dumps(gate, indent=2, allow_nan=False) + "\n")
    _write_atomic(out_dir / "junit.xml", render_junit(decision, report))
