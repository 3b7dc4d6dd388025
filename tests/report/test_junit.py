"""junit.xml as CI consumers read it: counts, one case per rule, failures with reasons."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from benchgate.report.junit import render_junit
from benchgate.spec.report import GateDecision, Report, RuleVerdict

REPORT = Report(benchmark_id="bmk-0123456789ab", name="nightly <QA> & co", status="completed")


def verdict(outcome: str, rule: str, reason: str, task: str = "question-answering") -> RuleVerdict:
    return RuleVerdict(
        rule=rule, model="ft", task=task, metric="f1-score", comparison="no_worse_than", verdict=outcome,
        reason=reason, observed={"ft": 82.0, "base": 84.0}, difference=-2.0, ci_low=-2.6, ci_high=-1.4,
        ci_level=0.9, p_value=0.0005, n=1000, test="paired-bootstrap",
    )  # fmt: skip


DECISION = GateDecision(
    decision="fail",
    rules=[
        verdict("pass", "ft f1-score at least 80", "f1-score = 82, at least 80"),
        verdict("fail", "ft f1-score no worse than base (margin 1)", 'drop of 2 > 1 & "significant" <p'),
        verdict("inconclusive", "ft rouge-l at least 0.3", "no results for ft", task="text-summarization"),
        verdict("warn", "ft exact-match no worse than base", "too little data: 30 items\x07"),
    ],
)


def test_counts_and_cases_parse() -> None:
    root = ET.fromstring(render_junit(DECISION, REPORT).encode())
    assert root.tag == "testsuites"
    [suite] = root.findall("testsuite")
    for element in (root, suite):
        assert {k: element.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
            "tests": "4", "failures": "1", "errors": "1", "skipped": "0",
        }  # fmt: skip
    assert suite.get("name") == "benchgate gate: nightly <QA> & co"
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties == {"benchmarkId": "bmk-0123456789ab", "decision": "fail"}
    cases = suite.findall("testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [(v.task, v.rule) for v in DECISION.rules]


def test_failure_error_and_warn_bodies() -> None:
    suite = ET.fromstring(render_junit(DECISION, REPORT).encode()).find("testsuite")
    passed, failed, inconclusive, warned = suite.findall("testcase")
    failure = failed.find("failure")
    assert failure.get("message") == 'drop of 2 > 1 & "significant" <p'
    assert "ci_low: -2.6" in failure.text and "p_value: 0.0005" in failure.text
    assert inconclusive.find("error").get("message") == "no results for ft"
    assert inconclusive.find("failure") is None
    assert warned.find("failure") is None and warned.find("error") is None
    assert warned.find("system-out").text.startswith("WARNING: too little data: 30 items?")
    assert passed.find("system-out").text.startswith("f1-score = 82")


def test_no_rules_is_an_empty_valid_suite() -> None:
    root = ET.fromstring(render_junit(GateDecision(decision="pass", rules=[]), REPORT).encode())
    assert root.get("tests") == "0" and root.find("testsuite").findall("testcase") == []
