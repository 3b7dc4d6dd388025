"""gate.json, junit.xml and the markdown verdict table, including GitHub's step summary."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from benchgate.report.build import append_step_summary
from benchgate.report.formats import GATE_FILES, write_outputs
from benchgate.report.markdown import render_gate_markdown
from benchgate.spec.report import DeliveryResult, GateDecision, Report, RuleVerdict

REPORT = Report(benchmark_id="bmk-0123456789ab", name="nightly", status="completed")
DECISION = GateDecision(
    decision="fail",
    rules=[
        RuleVerdict(
            rule="ft f1-score no worse than base | margin 1", model="ft", task="question-answering",
            metric="f1-score", comparison="no_worse_than", verdict="fail", reason="significant drop",
            reference="base", observed={"ft": 82.0, "base": 84.0}, difference=-2.0, ci_low=-2.6, ci_high=-1.4,
            ci_level=0.9, p_value=0.0005, p_adjusted=0.001, n=1000, minimum_detectable=float("inf"),
        ),
        RuleVerdict(
            rule="ft cost", model="ft", task="question-answering", metric="cost_usd", comparison="at_most",
            verdict="pass", reason="cost_usd = 1.2, at most 5", observed={"ft": 1.2}, difference=-3.8,
            threshold=5.0, ci_low=1.1, ci_high=1.3,
        ),
    ],
    deliveries=[
        DeliveryResult(
            url="https://hooks.example/alert", delivery_id="d-1", status=200, attempts=2, ok=True,
            event="on_fail",
        )
    ],
)  # fmt: skip


def test_markdown_table() -> None:
    text = render_gate_markdown(DECISION)
    lines = text.splitlines()
    assert lines[0] == "## Gate: ❌ fail"
    row = lines[4]
    assert row.startswith(
        "| ❌ fail | ft f1-score no worse than base \\| margin 1 | question-answering | ft 82, base 84 |"
    )
    assert "-2 (90% CI -2.6 to -1.4)" in row and "0.0005 (Holm 0.001)" in row
    assert lines[5].startswith(
        "| ✅ pass | ft cost | question-answering | ft 1.2 (CI 1.1 to 1.3) | -3.8 from 5 |"
    )
    assert "- on_fail → https://hooks.example/alert: delivered, 2 attempts, delivery d-1" in text
    assert all(line.count("|") - line.count("\\|") == 8 for line in lines[2:6])


def test_write_gate_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    write_outputs(out, REPORT.model_copy(update={"gate": DECISION}), GATE_FILES)
    gate = json.loads((out / "gate.json").read_text())
    assert gate["benchmarkId"] == "bmk-0123456789ab" and gate["decision"] == "fail"
    assert gate["rules"][0]["minimum_detectable"] is None and gate["deliveries"][0]["delivery_id"] == "d-1"
    assert ET.parse(out / "junit.xml").getroot().get("failures") == "1"
    assert sorted(p.name for p in out.iterdir()) == ["gate.json", "junit.xml"]  # no temp files left


def test_report_with_gate_is_appended_to_the_github_step_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    append_step_summary(render_gate_markdown(DECISION))
    assert summary.read_text().startswith("# earlier step\n## Gate: ❌ fail")
    monkeypatch.delenv("GITHUB_STEP_SUMMARY")
    append_step_summary("ignored")
    assert "ignored" not in summary.read_text()
