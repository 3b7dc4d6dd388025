"""Inputs of `benchgate gate`: a stored report and a rules file, checked against each other."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchgate.errors import RequestError
from benchgate.gate.evaluate import check_rules_against_report, load_gate_spec
from benchgate.spec.gate import GateSpec


def load_report_and_rules(report_path: Path, rules_path: Path) -> tuple[dict[str, Any], GateSpec]:
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise RequestError([f"(report): cannot read {report_path}: {error}"], str(report_path)) from None
    if not isinstance(report, dict) or "report" not in report or "benchmarkId" not in report:
        raise RequestError(
            ["(report): not a benchgate report (no benchmarkId/report keys)"], str(report_path)
        )
    spec = load_gate_spec(rules_path)
    problems = check_rules_against_report(spec, report)
    if problems:
        raise RequestError(problems, str(rules_path))
    return report, spec
