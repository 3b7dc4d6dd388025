"""JUnit XML for the gate: one test case per rule, so CI systems show which rule failed and why."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from benchgate.spec.report import GateDecision, Report, RuleVerdict, Verdict, format_number

_NOT_XML = re.compile(r"[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")  # XML 1.0 characters
_EVIDENCE = ("difference", "ci_low", "ci_high", "ci_level", "p_value", "p_adjusted", "n", "test")


def _text(value: object) -> str:
    return _NOT_XML.sub("?", str(value))


def _evidence(verdict: RuleVerdict) -> str:
    """The numbers behind a verdict, one per line, for the failure body a reviewer opens."""
    lines = [verdict.reason, f"observed: {verdict.observed}"]
    for key in _EVIDENCE:
        value = getattr(verdict, key)
        if value is not None:
            lines.append(f"{key}: {format_number(value, '.6g') if isinstance(value, float) else value}")
    return "\n".join(_text(line) for line in lines)


def render_junit(decision: GateDecision, report: Report) -> str:
    """Failures carry the reason; inconclusive is <error> (infrastructure, not the model); warn passes."""
    failures = sum(v.verdict == Verdict.FAIL for v in decision.rules)
    errors = sum(v.verdict == Verdict.INCONCLUSIVE for v in decision.rules)
    counts = {"tests": str(len(decision.rules)), "failures": str(failures), "errors": str(errors)}
    counts |= {"skipped": "0", "time": "0"}
    root = ET.Element("testsuites", {"name": "benchgate", **counts})
    suite = ET.SubElement(root, "testsuite", {"name": _text(f"benchgate gate: {report.name}"), **counts})
    properties = ET.SubElement(suite, "properties")
    for name, value in (("benchmarkId", report.benchmark_id), ("decision", decision.decision)):
        ET.SubElement(properties, "property", {"name": name, "value": _text(value)})
    for verdict in decision.rules:
        case = ET.SubElement(
            suite, "testcase", {"classname": _text(verdict.task), "name": _text(verdict.rule), "time": "0"}
        )
        if verdict.verdict == Verdict.FAIL:
            ET.SubElement(
                case, "failure", {"message": _text(verdict.reason), "type": "GateFailed"}
            ).text = _evidence(verdict)
        elif verdict.verdict == Verdict.INCONCLUSIVE:
            ET.SubElement(
                case, "error", {"message": _text(verdict.reason), "type": "Inconclusive"}
            ).text = _evidence(verdict)
        else:
            prefix = "WARNING: " if verdict.verdict == Verdict.WARN else ""
            ET.SubElement(case, "system-out").text = prefix + _evidence(verdict)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
