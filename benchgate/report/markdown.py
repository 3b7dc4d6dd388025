"""report.md: one results table per evaluation task, then the gate's verdict table.

The same text goes to GitHub's step summary, so tables must stay valid GitHub markdown.
"""

from __future__ import annotations

from benchgate.spec.report import (
    Drilldown,
    GateDecision,
    Report,
    RuleVerdict,
    TaskDetails,
    Verdict,
    format_number,
)

_ICONS = {
    Verdict.PASS: "✅ pass",
    Verdict.FAIL: "❌ fail",
    Verdict.WARN: "⚠️ warn",
    Verdict.INCONCLUSIVE: "❔ inconclusive",
}


def render_markdown(report: Report) -> str:
    """One table per evaluation task with 95% intervals, and the gate's verdicts when it was gated."""
    lines = [f"# {report.name}", "", f"`{report.benchmark_id}` · status **{report.status}**", ""]
    for task, section in report.report.items():
        task_details = report.task_details(task)
        first = next(iter(task_details.values()), None)
        metrics = list(first.metrics) if first else []
        lines += [f"## {task} · {section.dataset}", ""]
        if not metrics:
            lines += ["No results.", ""]
            continue
        lines.append("| model | " + " | ".join(metrics) + " | n | errors |")
        lines.append("|---" * (len(metrics) + 3) + "|")
        lines += [_results_row(model, detail, metrics) for model, detail in task_details.items()]
        lines += _timeout_notes(task_details)
        lines.append("")
    lines.append(
        "Values with 95% bootstrap confidence intervals over items; ROUGE as fractions, others in percent."
    )
    if report.gate is not None:
        lines += ["", render_gate_markdown(report.gate)]
    return "\n".join(lines) + "\n"


def _results_row(model: str, detail: TaskDetails, metrics: list[str]) -> str:
    if detail.failure:
        return f"| {model} | failed: {detail.failure} |"
    cells = []
    for metric in metrics:
        stats = detail.metrics[metric]
        spec = ".1f" if detail.scales[metric] == "percent" else ".3f"
        value, low, high = (
            format_number(v, spec, missing="—") for v in (stats.value, stats.ci_low, stats.ci_high)
        )
        cells.append(f"{value} [{low}, {high}]")
    flag = " ⚠ inconclusive" if detail.inconclusive else ""
    return f"| {model} | " + " | ".join(cells) + f" | {detail.n} | {detail.n_errors}{flag} |"


def _timeout_notes(task_details: dict[str, TaskDetails]) -> list[str]:
    """Timed-out attempts, which latency percentiles of successful requests would hide; none, no lines."""
    notes = [
        f"- {model}: {detail.timeouts} of {detail.attempts} attempts timed out; latency p95 "
        f"{format_number(detail.latency_p95_with_timeouts_ms, '.0f')} ms counting them at the timeout, "
        f"{format_number(detail.latency_ms.get('p95'), '.0f')} ms over successful requests alone"
        for model, detail in task_details.items()
        if detail.timeouts
    ]
    return ["", *notes] if notes else []


def render_gate_markdown(decision: GateDecision) -> str:
    """A verdict table that reads well in report.md and in a GitHub step summary."""
    lines = [
        f"## Gate: {_ICONS[decision.decision]}",
        "",
        "| Verdict | Rule | Task | Observed | Difference | p | Reason |",
        "|---|---|---|---|---|---|---|",
    ]
    for v in decision.rules:
        p = _num(v.p_value) + (f" (Holm {_num(v.p_adjusted)})" if v.p_adjusted is not None else "")
        cells = [_ICONS[v.verdict], v.rule, v.task, _observed(v), _difference(v), p, v.reason]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    if not decision.rules:
        lines.append("| ✅ pass | (no rules) | | | | | |")
    for v in decision.rules:
        if v.drilldown is not None:
            lines += ["", *render_drilldown(v.drilldown, f"Items that moved most: {v.rule}")]
    if decision.deliveries:
        lines += ["", "Webhooks:", ""]
        for d in decision.deliveries:
            outcome = "delivered" if d.ok else f"FAILED ({d.error})"
            attempts = f"{d.attempts} attempt{'s' if d.attempts != 1 else ''}"
            lines.append(f"- {d.event} → {d.url}: {outcome}, {attempts}, delivery {d.delivery_id}")
    return "\n".join(lines) + "\n"


def render_drilldown(drilldown: Drilldown, title: str) -> list[str]:
    """A heading, the counts, and the items that moved most each way with both scores and excerpts."""
    d = drilldown
    lines = [
        f"### {_text(title)}",
        "",
        f"{_text(d.model)} against {_text(d.baseline)}, {_text(d.metric)} on {_text(d.task)}, "
        f"{d.paired} paired items: {d.worse} worse, {d.improved} improved, {d.unchanged} unchanged.",
        "",
    ]
    moved = [("worse", item) for item in d.most_worse] + [("improved", item) for item in d.most_improved]
    if not moved:
        return lines[:-1]
    header = ["", "item", d.model, d.baseline, "change", "prompt", "reference"]
    header += [f"{d.model} answer", f"{d.baseline} answer"]
    lines.append("| " + " | ".join(_text(cell) for cell in header) + " |")
    lines.append("|---" * len(header) + "|")
    for direction, item in moved:
        change = format_number(item.change, "+.4g")
        cells = [direction, item.example_id, _num(item.score), _num(item.baseline_score), change]
        cells += [item.prompt, item.reference, item.output, item.baseline_output]
        lines.append("| " + " | ".join(_text(cell) for cell in cells) + " |")
    return lines


def _text(text: str) -> str:
    """Untrusted text (model answers, dataset rows, ids) as inert markdown on one line: a crafted answer
    cannot end the table cell, open code, links or emphasis, or inject HTML."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for char in "\\`*_[]|~":
        text = text.replace(char, "\\" + char)
    return " ".join(text.split())


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _num(value: float | None) -> str:
    return format_number(value, missing="–")


def _interval(verdict: RuleVerdict) -> str:
    if verdict.ci_low is None or verdict.ci_high is None:
        return ""
    level = f"{verdict.ci_level:.0%} " if verdict.ci_level else ""
    return f" ({level}CI {_num(verdict.ci_low)} to {_num(verdict.ci_high)})"


def _observed(verdict: RuleVerdict) -> str:
    """Absolute rules' interval is the metric's own, so it sits with the value, not the difference."""
    text = ", ".join(f"{model} {_num(value)}" for model, value in verdict.observed.items())
    return text if verdict.relative else text + _interval(verdict)


def _difference(verdict: RuleVerdict) -> str:
    text = _num(verdict.difference)
    if verdict.difference is not None and verdict.difference >= 0:
        text = "+" + text
    if verdict.relative:
        return text + _interval(verdict)
    return f"{text} from {_num(verdict.threshold)}" if verdict.difference is not None else text
