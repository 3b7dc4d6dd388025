"""The typed report: report.json -> Report -> the same bytes, the Verdict enum, exit codes, output formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from benchgate.errors import EXIT_GATE_FAILED, EXIT_INCONCLUSIVE, EXIT_INVALID, EXIT_OK
from benchgate.report.build import build_report, report_exit_code, skeleton_report
from benchgate.report.formats import FORMATS, GATE_FILES, REPORT_FILES, write_outputs
from benchgate.run.evaluation import TaskResult
from benchgate.spec.report import (
    GateDecision,
    Report,
    RuleVerdict,
    Verdict,
    format_number,
    json_ready,
)
from benchgate.spec.request import BenchmarkRequest

REQUEST = BenchmarkRequest.model_validate(
    {
        "name": "Round trip",
        "models": [{"id": "cand", "provider": "builtin"}, {"id": "base", "provider": "builtin"}],
        "tasks": [{"task": "question-answering", "dataset": "squad-v2"}, {"task": "code-generation"}],
    }
)


def result(model: str, task: str, **fields: object) -> TaskResult:
    metric = "f1-score" if task == "question-answering" else "pass@1"
    defaults: dict[str, object] = {
        "model_id": model,
        "task": task,
        "dataset": f"{task}-data",
        "dataset_revision": "rev",
        "n_items": 7,
        "n": 6,
        "n_errors": 1,
        "error_rate": 1 / 7,
        "metrics": {metric: {"value": 200 / 3, "ci_low": 1 / 3, "ci_high": float("nan"), "n": 6}},
        "higher_is_better": {metric: True},
        "per_item_kind": {metric: "continuous"},
        "scales": {metric: "percent"},
        "latency_ms": {"p50": 12.3456789, "p95": None},
        "tokens": {"input": 10, "output": 5},
        "cost_usd": 0.000123456789,
        "requests": 7,
        "reused": 2,
        "breakdown": {"HasAns_total": 4, "HasAns_f1": 55.55555555},
    }
    return TaskResult(**{**defaults, **fields})  # type: ignore[arg-type]


def gated_report() -> Report:
    results = [
        result("cand", "question-answering"),
        result("base", "question-answering", cost_usd=None, inconclusive=True),
        result("cand", "code-generation"),
        result("base", "code-generation", n=0, metrics={}, failure="boom"),
    ]
    report = build_report("bmk-0123456789ab", REQUEST, results)
    verdict = RuleVerdict(
        rule="cand f1-score no worse than base", model="cand", task="question-answering", metric="f1-score",
        comparison="no_worse_than", verdict="warn", reason="too little data", reference="base",
        observed={"cand": 66.666667, "base": 66.666667}, difference=0.0, minimum_detectable=float("inf"),
    )  # fmt: skip
    report.gate = GateDecision(decision="pass", rules=[verdict])
    return report


def test_report_json_round_trips_to_identical_bytes() -> None:
    text = gated_report().to_json()
    assert Report.model_validate_json(text).to_json() == text
    assert json.dumps(json.loads(text), indent=2) + "\n" == text  # nothing but plain JSON


def test_report_json_shape() -> None:
    data = json.loads(gated_report().to_json())
    assert list(data) == ["benchmarkId", "name", "status", "completedAt", "report", "details", "gate"]
    qa = data["report"]["question-answering"]
    assert qa == {
        "dataset": "question-answering-data",
        "results": [{"model": "cand", "f1-score": 66.666667}, {"model": "base", "f1-score": 66.666667}],
    }
    assert data["report"]["code-generation"]["results"] == [{"model": "cand", "pass@1": 66.666667}]
    cand = data["details"]["question-answering"]["cand"]
    assert cand["metrics"]["f1-score"] == {"value": 66.666667, "ci_low": 0.333333, "ci_high": None, "n": 6}
    assert cand["breakdown"] == {"HasAns_total": 4, "HasAns_f1": 55.555556}  # counts stay integers
    assert cand["latency_ms"] == {"p50": 12.345679, "p95": None} and cand["error_rate"] == 0.142857
    assert data["details"]["question-answering"]["base"]["cost_usd"] is None
    assert data["gate"]["rules"][0]["minimum_detectable"] is None and data["gate"]["decision"] == "pass"


def test_queued_and_failed_reports_keep_their_keys() -> None:
    queued = skeleton_report("bmk-1", "n", "queued")
    assert queued == {
        "benchmarkId": "bmk-1",
        "name": "n",
        "status": "queued",
        "completedAt": None,
        "report": {},
    }
    failed = {**queued, "status": "failed", "completedAt": "2026-01-01T00:00:00Z", "error": "worker died"}
    assert Report.model_validate(failed).to_dict() == failed
    assert list(Report.model_validate(failed).to_dict()) == list(failed)


def test_verdict_is_a_string_enum() -> None:
    assert [v.value for v in Verdict] == ["pass", "fail", "warn", "inconclusive"]
    assert Verdict.FAIL == "fail" and str(Verdict.FAIL) == "fail" and f"{Verdict.WARN}" == "warn"
    assert json.dumps({"v": Verdict.INCONCLUSIVE}) == '{"v": "inconclusive"}'
    decision = GateDecision(decision="fail", rules=[])
    assert decision.decision is Verdict.FAIL and decision.to_dict()["decision"] == "fail"
    with pytest.raises(ValidationError):
        GateDecision(decision="maybe", rules=[])


def test_gate_decision_of_rules() -> None:
    def rules(*outcomes: str) -> list[RuleVerdict]:
        return [
            RuleVerdict(
                rule="r", model="m", task="t", metric="x", comparison="at_least", verdict=o, reason=""
            )
            for o in outcomes
        ]

    assert GateDecision.of(rules("pass", "warn")).decision == Verdict.PASS
    assert GateDecision.of(rules("inconclusive", "pass")).decision == Verdict.INCONCLUSIVE
    assert GateDecision.of(rules("inconclusive", "fail")).decision == Verdict.FAIL
    assert GateDecision.of([]).decision == Verdict.PASS


def test_exit_codes_of_a_report() -> None:
    report = gated_report()
    assert report.exit_code() == EXIT_INVALID  # a pair failed
    completed = report.model_copy(update={"status": "completed"})
    assert completed.exit_code() == EXIT_OK
    failing = GateDecision(decision="fail", rules=[])
    assert completed.model_copy(update={"gate": failing}).exit_code() == EXIT_GATE_FAILED
    ungated = completed.model_copy(update={"gate": None})
    assert ungated.exit_code() == EXIT_INCONCLUSIVE  # base erred beyond its budget
    assert report_exit_code(ungated.to_dict()) == EXIT_INCONCLUSIVE


def test_formats_registry(tmp_path: Path) -> None:
    assert set(FORMATS) == {"report.json", "report.md", "gate.json", "junit.xml"}
    assert set(REPORT_FILES) | set(GATE_FILES) == set(FORMATS)
    report = gated_report()
    texts = write_outputs(tmp_path, report, FORMATS)
    assert {p.name for p in tmp_path.iterdir()} == set(FORMATS)
    assert all((tmp_path / name).read_text(encoding="utf-8") == text for name, text in texts.items())
    assert texts["report.json"] == report.to_json()
    assert json.loads(texts["gate.json"])["benchmarkId"] == "bmk-0123456789ab"
    assert "## Gate: ✅ pass" in texts["report.md"]
    with pytest.raises(ValueError, match="no gate decision"):
        write_outputs(tmp_path, report.model_copy(update={"gate": None}), GATE_FILES)


def test_json_ready_and_format_number() -> None:
    assert json_ready({"a": [float("nan"), float("inf"), 1 / 3, 2]}, 3) == {"a": [None, None, 0.333, 2]}
    assert json_ready(1 / 3) == 1 / 3
    assert format_number(None) == "n/a" and format_number(float("nan"), missing="—") == "—"
    assert format_number(1234.5678) == "1235" and format_number(-0.5, "+.2f") == "-0.50"
