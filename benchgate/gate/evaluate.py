"""The quality gate (DESIGN.md §3 gate, §6): rules on a report -> pass | fail | inconclusive.

Absolute rules compare a reported value with a threshold. Relative rules compare two models on the same
evaluation task; with ``confidence`` they decide on a paired test over the items both models were
scored on (scorers/paired.py), so item difficulty cancels out and only the models' difference is tested.
Infrastructure trouble (missing results, errors beyond the budget, missing per-item scores) makes a rule
inconclusive, never a regression.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from benchgate.errors import EXIT_GATE_FAILED, EXIT_INCONCLUSIVE, EXIT_OK, RequestError
from benchgate.run.validation import DETAIL_METRICS
from benchgate.spec.base import validation_problems
from benchgate.spec.files import read_structured_file
from benchgate.spec.gate import BASELINE, GateRule, GateSpec
from scorers.paired import PairedResult, holm, mcnemar_exact, minimum_detectable_difference, paired_bootstrap

PASS, FAIL, WARN, INCONCLUSIVE = "pass", "fail", "warn", "inconclusive"
ScoreLoader = Callable[[str, str], "pd.DataFrame | None"]


@dataclass
class DeliveryResult:
    """One webhook delivery as recorded in gate.json (the URL without query string or credentials)."""

    url: str
    delivery_id: str
    status: int | None
    attempts: int
    ok: bool
    error: str | None = None
    required: bool = True
    event: str = "on_pass"


@dataclass
class RuleVerdict:
    """One rule's outcome with the evidence a reviewer needs to trust it.

    ``observed`` maps model id -> reported value. For relative rules ``difference`` is candidate minus
    reference in the metric's units and ``ci_low``/``ci_high`` its paired interval at ``ci_level``; for
    absolute rules ``difference`` is value minus threshold and the interval is the metric's own CI.
    ``minimum_detectable`` is the shift beyond the margin the paired test finds with 80% power.
    """

    rule: str
    model: str
    task: str
    metric: str
    comparison: str
    verdict: str
    reason: str
    reference: str | None = None
    threshold: float | None = None
    margin: float | None = None
    confidence: float | None = None
    observed: dict[str, float | None] = field(default_factory=dict)
    difference: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    ci_level: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    n: int | None = None
    test: str = "point"
    minimum_detectable: float | None = None
    insufficient_data: bool = False


@dataclass
class GateDecision:
    decision: str
    rules: list[RuleVerdict]
    deliveries: list[DeliveryResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: non-finite numbers (an unknown detectable difference) become null."""
        return _json_safe(
            {
                "decision": self.decision,
                "rules": [asdict(r) for r in self.rules],
                "deliveries": [asdict(d) for d in self.deliveries],
            }
        )


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


# --- rules files -------------------------------------------------------------------------------------


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
    problems = [
        f"rules[{i}]: compares with 'baseline' but baseline is not set"
        for i, rule in enumerate(spec.rules)
        if rule.reference_model == BASELINE and not spec.baseline
    ]
    if problems:
        raise RequestError(problems, source)
    return spec


def check_rules_against_report(spec: GateSpec, report: dict[str, Any]) -> list[str]:
    """Rules naming a model, task or metric the report does not know at all (a configuration error).

    A model known to the report but without results for a rule's task is not a problem here: that is
    missing data, which the gate reports as inconclusive.
    """
    tasks = report.get("report", {})
    details = report.get("details", {})
    models = {row.get("model") for section in tasks.values() for row in section.get("results", [])}
    models |= {model for per_task in details.values() for model in per_task}
    problems = []
    if spec.baseline and spec.baseline not in models:
        problems.append(f"baseline: unknown model {spec.baseline!r} (report models: {_names(models)})")
    for i, rule in enumerate(spec.rules):
        where = f"rules[{i}]"
        if rule.model not in models:
            problems.append(f"{where}.model: unknown model {rule.model!r} (report models: {_names(models)})")
        reference = rule.reference_model
        if reference and reference != BASELINE and reference not in models:
            key = "no_worse_than" if rule.no_worse_than else "better_than"
            problems.append(f"{where}.{key}: unknown model {reference!r} (report models: {_names(models)})")
        if reference == BASELINE and not spec.baseline:
            problems.append(f"{where}: compares with 'baseline' but baseline is not set")
        if rule.task not in tasks:
            problems.append(
                f"{where}.task: unknown evaluation task {rule.task!r} (report tasks: {_names(tasks)})"
            )
            continue
        metrics = {key for row in tasks[rule.task].get("results", []) for key in row if key != "model"}
        metrics |= {m for d in details.get(rule.task, {}).values() for m in d.get("metrics", {})}
        if rule.metric not in metrics | DETAIL_METRICS:
            allowed = _names(metrics | DETAIL_METRICS)
            problems.append(
                f"{where}.metric: {rule.metric!r} is not reported for {rule.task!r} (metrics: {allowed})"
            )
    return problems


def _names(values: Any) -> str:
    return ", ".join(sorted(str(v) for v in values if v is not None)) or "none"


# --- evaluation --------------------------------------------------------------------------------------


def describe_rule(rule: GateRule, baseline: str | None = None) -> str:
    """The rule in words: the JUnit test name and the first column of the verdict table."""
    if rule.name:
        return rule.name
    head = f"{rule.model} {rule.metric}"
    if rule.at_least is not None:
        return f"{head} at least {rule.at_least:g}"
    if rule.at_most is not None:
        return f"{head} at most {rule.at_most:g}"
    reference = _reference_label(rule, baseline)
    level = f" at {rule.confidence:.0%} confidence" if rule.confidence else ""
    if rule.no_worse_than:
        return f"{head} no worse than {reference} (margin {rule.margin:g}){level}"
    gain = f" by more than {rule.margin:g}" if rule.margin else ""
    return f"{head} better than {reference}{gain}{level}"


def _reference_label(rule: GateRule, baseline: str | None) -> str:
    reference = rule.reference_model
    if reference != BASELINE or baseline == BASELINE:
        return str(reference)
    return f"baseline {baseline}"


def evaluate_gate(report: dict[str, Any], spec: GateSpec, load_scores: ScoreLoader) -> GateDecision:
    """Every rule's verdict and the overall decision: fail > inconclusive > pass (warn counts as pass)."""
    for i, rule in enumerate(spec.rules):
        if rule.reference_model == BASELINE and not spec.baseline:
            raise RequestError([f"rules[{i}]: compares with 'baseline' but baseline is not set"])
    evaluations = [_Evaluation(i, rule, report, spec, load_scores) for i, rule in enumerate(spec.rules)]
    tested = [e for e in evaluations if e.verdict.p_value is not None]
    if spec.family_wise == "holm" and tested:
        for evaluation, adjusted in zip(tested, holm([e.verdict.p_value for e in tested]), strict=True):
            evaluation.verdict.p_adjusted = adjusted
    for evaluation in tested:
        evaluation.decide_from_test()
    verdicts = [e.verdict for e in evaluations]
    outcomes = {v.verdict for v in verdicts}
    decision = FAIL if FAIL in outcomes else INCONCLUSIVE if INCONCLUSIVE in outcomes else PASS
    return GateDecision(decision=decision, rules=verdicts)


def exit_code(decision: GateDecision, *, fail_on_delivery_error: bool = True) -> int:
    """DESIGN.md §6 exit codes; a passed gate whose required on_pass hook failed did not ship: exit 3."""
    if decision.decision == FAIL:
        return EXIT_GATE_FAILED
    if decision.decision == INCONCLUSIVE:
        return EXIT_INCONCLUSIVE
    if fail_on_delivery_error and any(d.required and not d.ok for d in decision.deliveries):
        return EXIT_INCONCLUSIVE
    return EXIT_OK


class _Evaluation:
    """Works out one rule; paired tests keep their verdict open until (Holm-adjusted) p-values are known."""

    def __init__(
        self, index: int, rule: GateRule, report: dict[str, Any], spec: GateSpec, load_scores: ScoreLoader
    ) -> None:
        self.rule = rule
        self.report = report
        self.spec = spec
        self.load_scores = load_scores
        self.seed = (spec.seed % 2**32, index)
        comparison = next(
            k for k in ("at_least", "at_most", "no_worse_than", "better_than") if getattr(rule, k) is not None
        )
        reference = rule.reference_model
        self.verdict = RuleVerdict(
            rule=describe_rule(rule, spec.baseline),
            model=rule.model,
            task=rule.task,
            metric=rule.metric,
            comparison=comparison,
            verdict=INCONCLUSIVE,
            reason="",
            reference=spec.baseline if reference == BASELINE else reference,
            threshold=rule.at_least if rule.at_least is not None else rule.at_most,
            margin=rule.margin if reference else None,
            confidence=rule.confidence if reference else None,
        )
        self.higher_is_better = self._higher_is_better()
        if self.verdict.reference is None:
            self._absolute()
        else:
            self._relative()

    # -- lookups

    def _details(self, model: str) -> dict[str, Any]:
        return self.report.get("details", {}).get(self.rule.task, {}).get(model, {})

    def _higher_is_better(self) -> bool:
        if self.rule.metric in DETAIL_METRICS:
            return False
        return bool(self._details(self.rule.model).get("higher_is_better", {}).get(self.rule.metric, True))

    def _value(self, model: str) -> tuple[float | None, str | None]:
        """The reported value, or None and why it is missing."""
        task, metric = self.rule.task, self.rule.metric
        rows = self.report.get("report", {}).get(task, {}).get("results", [])
        row = next((r for r in rows if r.get("model") == model), None)
        if row is None:
            return None, f"no results for {model} on {task}"
        details = self._details(model)
        if details.get("inconclusive"):
            errors = f" ({details.get('n_errors')} errors, error rate {details.get('error_rate', 0):.1%})"
            return None, f"{model} on {task}: infrastructure errors beyond the error budget{errors}"
        if metric in DETAIL_METRICS:
            if metric == "latency_p95_ms":
                value = details.get("latency_ms", {}).get("p95")
            else:
                value = details.get(metric)
            if value is None:
                return None, f"{metric} of {model} on {task} is not in the report's details"
            return float(value), None
        value = row.get(metric)
        if value is None:
            return None, f"{metric} of {model} on {task} is missing from the report"
        return float(value), None

    def _inconclusive(self, reason: str) -> None:
        self.verdict.verdict = INCONCLUSIVE
        self.verdict.reason = reason

    # -- absolute rules

    def _absolute(self) -> None:
        rule, v = self.rule, self.verdict
        value, missing = self._value(rule.model)
        v.observed = {rule.model: value}
        if missing:
            return self._inconclusive(missing)
        assert value is not None and v.threshold is not None
        interval = self._details(rule.model).get("metrics", {}).get(rule.metric, {})
        v.ci_low, v.ci_high, v.n = interval.get("ci_low"), interval.get("ci_high"), interval.get("n")
        v.difference = value - v.threshold
        ok = value >= v.threshold if rule.at_least is not None else value <= v.threshold
        word = "at least" if rule.at_least is not None else "at most"
        v.verdict = PASS if ok else FAIL
        v.reason = f"{rule.metric} = {_fmt(value)}, {'' if ok else 'not '}{word} {_fmt(v.threshold)}"

    # -- relative rules

    def _relative(self) -> None:
        rule, v = self.rule, self.verdict
        reference = v.reference
        assert reference is not None
        value, missing = self._value(rule.model)
        ref_value, ref_missing = self._value(reference)
        v.observed = {rule.model: value, reference: ref_value}
        if missing or ref_missing:
            return self._inconclusive("; ".join(m for m in (missing, ref_missing) if m))
        assert value is not None and ref_value is not None
        v.difference = value - ref_value
        if rule.metric in DETAIL_METRICS:
            v.confidence = None
            return self._decide_point(note=f"; no per-item data for {rule.metric}, point estimates compared")
        pairs = self._pairs(reference)
        if isinstance(pairs, str):
            if rule.confidence:
                return self._inconclusive(pairs)
            return self._decide_point()
        result = self._test(*pairs, confidence=rule.confidence or 0.95)
        sign = 1.0 if self.higher_is_better else -1.0
        bounds = sorted((sign * result.ci_low, sign * result.ci_high))
        v.ci_low, v.ci_high = bounds
        v.ci_level = 2 * (rule.confidence or 0.95) - 1
        v.n = result.n
        if not rule.confidence:
            return self._decide_point()
        v.difference = sign * result.difference
        v.p_value = result.p_value
        diffs = pairs[0] - pairs[1]
        v.minimum_detectable = minimum_detectable_difference(diffs, rule.confidence)
        v.insufficient_data = result.n < 2 or (rule.margin > 0 and v.minimum_detectable > rule.margin)

    def _pairs(self, reference: str) -> tuple[np.ndarray, np.ndarray] | str:
        """Per-item scores of candidate and reference, oriented so that larger is better, paired by item."""
        metric = self.rule.metric
        frames = {}
        for model in (self.rule.model, reference):
            frame = self.load_scores(model, self.rule.task)
            if frame is None or "example_id" not in frame or metric not in frame:
                return f"no per-item {metric} scores stored for {model} on {self.rule.task}"
            frames[model] = frame[["example_id", metric]].dropna()
        try:
            joined = frames[self.rule.model].merge(
                frames[reference], on="example_id", suffixes=("_a", "_b"), validate="one_to_one"
            )
        except pd.errors.MergeError:
            return f"per-item scores for {self.rule.task} repeat an example_id; cannot pair items"
        if joined.empty:
            return f"{self.rule.model} and {reference} share no scored items on {self.rule.task}"
        sign = 1.0 if self.higher_is_better else -1.0
        return sign * joined[f"{metric}_a"].to_numpy(float), sign * joined[f"{metric}_b"].to_numpy(float)

    def _test(self, a: np.ndarray, b: np.ndarray, *, confidence: float) -> PairedResult:
        rule = self.rule
        alternative = "less" if rule.no_worse_than else "greater"
        kind = self._details(rule.model).get("per_item_kind", {}).get(rule.metric)
        scale = 100.0 if max(np.abs(a).max(), np.abs(b).max()) > 1 else 1.0
        binary = bool(np.isin(a, (0.0, scale)).all() and np.isin(b, (0.0, scale)).all())
        if binary and kind in (None, "binary"):
            self.verdict.test = "mcnemar-exact"
            return mcnemar_exact(
                a, b, margin=rule.margin, confidence=confidence, alternative=alternative, scale=scale
            )
        self.verdict.test = "paired-bootstrap"
        return paired_bootstrap(
            a,
            b,
            margin=rule.margin,
            resamples=self.spec.bootstrap_samples,
            seed=self.seed,
            confidence=confidence,
            alternative=alternative,
        )

    def _decide_point(self, note: str = "") -> None:
        """Without confidence: compare the reported values (the difference is improvement-oriented)."""
        rule, v = self.rule, self.verdict
        assert v.difference is not None
        gain = v.difference if self.higher_is_better else -v.difference
        change = f"{_change(v.difference, rule.metric)} vs {_reference_label(rule, self.spec.baseline)}"
        if rule.no_worse_than:
            ok = gain >= -rule.margin
            text = f"{change}, {'within' if ok else 'beyond'} the allowed margin {_fmt(rule.margin)}"
        else:
            ok = gain > rule.margin
            text = f"{change}, needs a gain of more than {_fmt(rule.margin)}"
        v.test = "point"
        v.verdict = PASS if ok else FAIL
        v.reason = text + (note or " (point estimates, no confidence set)")

    def decide_from_test(self) -> None:
        """The paired verdict, once p_value (and p_adjusted under Holm) is known."""
        rule, v = self.rule, self.verdict
        assert rule.confidence is not None and v.p_value is not None and v.difference is not None
        alpha = 1 - rule.confidence
        p = v.p_adjusted if v.p_adjusted is not None else v.p_value
        significant = p < alpha
        p_text = f"p={p:.3g}" + (" Holm-adjusted" if v.p_adjusted is not None else "")
        evidence = (
            f"{_change(v.difference, rule.metric)} vs {_reference_label(rule, self.spec.baseline)} on {v.n} "
            f"paired items, {v.ci_level:.0%} CI [{_fmt(v.ci_low)}, {_fmt(v.ci_high)}], {p_text}"
        )
        too_little = (
            f"too little data: {v.n} items detect only a shift of {_fmt(v.minimum_detectable)} beyond the "
            f"margin with 80% power, larger than the margin {_fmt(rule.margin)}"
        )
        if rule.no_worse_than:
            if significant:
                v.verdict, v.reason = (
                    FAIL,
                    f"significant drop beyond the margin {_fmt(rule.margin)}: {evidence}",
                )
            elif v.insufficient_data:
                v.verdict, v.reason = (
                    (WARN if rule.on_insufficient_data == "warn" else FAIL),
                    f"{too_little}; {evidence}",
                )
            else:
                v.verdict, v.reason = (
                    PASS,
                    f"no significant drop beyond the margin {_fmt(rule.margin)}: {evidence}",
                )
            return
        if significant:
            gain = f" of more than {_fmt(rule.margin)}" if rule.margin else ""
            v.verdict, v.reason = PASS, f"significant gain{gain}: {evidence}"
        else:
            # A promotion needs evidence, so too little data cannot turn into a (warn = pass) promotion.
            why = f"{too_little}; " if v.insufficient_data else ""
            v.verdict, v.reason = FAIL, f"gain not significant: {why}{evidence}"


def _fmt(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.4g}"


def _change(difference: float, metric: str) -> str:
    return f"{metric} {'+' if difference >= 0 else ''}{_fmt(difference)}"
