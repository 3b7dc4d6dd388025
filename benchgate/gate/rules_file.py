"""Inputs of `benchgate gate`: a rules file and a stored report, checked against each other."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from benchgate.errors import RequestError
from benchgate.spec.base import validation_problems
from benchgate.spec.files import read_structured_file
from benchgate.spec.gate import GateSpec, rule_name_problems
from benchgate.spec.report import Report


def load_gate_spec(path: str | Path) -> GateSpec:
    """A rules file for `benchgate gate`: a YAML/JSON mapping with exactly the GateSpec fields."""
    source = str(path)
    data = read_structured_file(path)
    if not isinstance(data, dict):
        raise RequestError([f"(top level): expected a mapping, got {type(data).__name__}"], source)
    try:
        spec = GateSpec.model_validate(data)
    except ValidationError as error:
        raise RequestError(validation_problems(error, "gate"), source) from None
    problems = spec.unset_baseline_problems()
    if problems:
        raise RequestError(problems, source)
    return spec


def check_rules_against_report(spec: GateSpec, report: Report) -> list[str]:
    """Rules naming a model, task or metric the report does not know at all (a configuration error).

    A model known to the report but without results for a rule's task is not a problem here: that is
    missing data, which the gate reports as inconclusive.
    """
    return rule_name_problems(spec, report.models(), report.report.keys(), report.metrics, known="report ")


def load_report(path: Path) -> Report:
    """A report.json as `benchgate run` writes it (or as the store and the API hold it)."""
    source = str(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise RequestError([f"(report): cannot read {path}: {error}"], source) from None
    if not isinstance(data, dict) or "report" not in data or "benchmarkId" not in data:
        raise RequestError(["(report): not a benchgate report (no benchmarkId/report keys)"], source)
    try:
        return Report.model_validate(data)
    except ValidationError as error:
        raise RequestError([f"(report) {p}" for p in validation_problems(error, "report")], source) from None


def load_report_and_rules(report_path: Path, rules_path: Path) -> tuple[Report, GateSpec]:
    report = load_report(report_path)
    spec = load_gate_spec(rules_path)
    problems = check_rules_against_report(spec, report)
    if problems:
        raise RequestError(problems, str(rules_path))
    return report, spec
