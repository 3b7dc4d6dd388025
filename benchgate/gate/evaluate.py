"""The quality gate: rules on a report -> pass | fail | inconclusive, with the evidence for each verdict.

Absolute rules compare a reported value with a threshold. Relative rules compare two models on the same
evaluation task; with ``confidence`` they decide on a paired test over the items both models were
scored on (benchgate/gate/pairing.py). Infrastructure trouble (missing results, errors beyond the budget,
missing per-item scores) makes a rule inconclusive, never a regression.
"""

from __future__ import annotations

from benchgate.errors import RequestError
from benchgate.gate.kinds import ReferenceKind, ThresholdKind, describe_rule, kind_of, reference_label
from benchgate.gate.pairing import ScoreLoader, paired_scores, paired_test
from benchgate.spec.gate import BASELINE, GateRule, GateSpec
from benchgate.spec.report import DETAIL_METRICS, GateDecision, Report, RuleVerdict, Verdict, format_number
from scorers.paired import holm, minimum_detectable_difference


def evaluate_gate(report: Report, spec: GateSpec, load_scores: ScoreLoader) -> GateDecision:
    """Every rule's verdict and the overall decision: fail > inconclusive > pass (warn counts as pass)."""
    problems = spec.unset_baseline_problems()
    if problems:
        raise RequestError(problems)
    evaluations = [_Evaluation(i, rule, report, spec, load_scores) for i, rule in enumerate(spec.rules)]
    tested = [(e, e.verdict.p_value) for e in evaluations if e.verdict.p_value is not None]
    if spec.family_wise == "holm" and tested:
        for (evaluation, _), adjusted in zip(tested, holm([p for _, p in tested]), strict=True):
            evaluation.verdict.p_adjusted = adjusted
    for evaluation, _ in tested:
        evaluation.decide_from_test()
    return GateDecision.of([e.verdict for e in evaluations])


class _Evaluation:
    """Works out one rule; paired tests keep their verdict open until (Holm-adjusted) p-values are known."""

    def __init__(
        self, index: int, rule: GateRule, report: Report, spec: GateSpec, load_scores: ScoreLoader
    ) -> None:
        self.rule = rule
        self.report = report
        self.spec = spec
        self.load_scores = load_scores
        self.seed = (spec.seed % 2**32, index)
        self.kind = kind_of(rule)
        reference = rule.reference_model
        self.verdict = RuleVerdict(
            rule=describe_rule(rule, spec.baseline),
            model=rule.model,
            task=rule.task,
            metric=rule.metric,
            comparison=rule.comparison,
            verdict=Verdict.INCONCLUSIVE,
            reason="",
            reference=spec.baseline if reference == BASELINE else reference,
            threshold=rule.threshold,
            margin=rule.margin if reference else None,
            confidence=rule.confidence if reference else None,
        )
        self.higher_is_better = self._higher_is_better()
        if isinstance(self.kind, ThresholdKind):
            self._absolute(self.kind)
        else:
            assert isinstance(self.kind, ReferenceKind)
            self._relative(self.kind)

    # -- lookups

    def _higher_is_better(self) -> bool:
        if self.rule.metric in DETAIL_METRICS:
            return False
        details = self.report.pair_details(self.rule.task, self.rule.model)
        return details.higher_is_better.get(self.rule.metric, True)

    def _value(self, model: str) -> tuple[float | None, str | None]:
        """The reported value, or None and why it is missing."""
        task, metric = self.rule.task, self.rule.metric
        row = self.report.row(task, model)
        if row is None:
            return None, f"no results for {model} on {task}"
        details = self.report.task_details(task).get(model)
        if details is not None and details.inconclusive:
            errors = f" ({details.n_errors} errors, error rate {details.error_rate:.1%})"
            return None, f"{model} on {task}: infrastructure errors beyond the error budget{errors}"
        if metric in DETAIL_METRICS:
            value = None if details is None else details.detail_value(metric)
            if value is None:
                return None, f"{metric} of {model} on {task} is not in the report's details"
            return float(value), None
        value = row.metrics.get(metric)
        if value is None:
            return None, f"{metric} of {model} on {task} is missing from the report"
        return float(value), None

    def _inconclusive(self, reason: str) -> None:
        self.verdict.verdict = Verdict.INCONCLUSIVE
        self.verdict.reason = reason

    # -- absolute rules

    def _absolute(self, kind: ThresholdKind) -> None:
        rule, v = self.rule, self.verdict
        value, missing = self._value(rule.model)
        v.observed = {rule.model: value}
        if missing:
            return self._inconclusive(missing)
        assert value is not None and v.threshold is not None
        interval = self.report.pair_details(rule.task, rule.model).metrics.get(rule.metric)
        if interval is not None:
            v.ci_low, v.ci_high, v.n = interval.ci_low, interval.ci_high, interval.n
        v.difference = value - v.threshold
        ok = kind.holds(value, v.threshold)
        v.verdict = Verdict.PASS if ok else Verdict.FAIL
        comparison = f"{'' if ok else 'not '}{kind.words} {format_number(v.threshold)}"
        v.reason = f"{rule.metric} = {format_number(value)}, {comparison}"

    # -- relative rules

    def _relative(self, kind: ReferenceKind) -> None:
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
        pairs = paired_scores(self.load_scores, rule, reference, self.higher_is_better)
        if isinstance(pairs, str):
            if rule.confidence:
                return self._inconclusive(pairs)
            return self._decide_point()
        confidence = rule.confidence or 0.95
        v.test, result = paired_test(
            *pairs,
            rule,
            kind,
            per_item_kind=self.report.pair_details(rule.task, rule.model).per_item_kind.get(rule.metric),
            confidence=confidence,
            resamples=self.spec.bootstrap_samples,
            seed=self.seed,
        )
        sign = 1.0 if self.higher_is_better else -1.0
        v.ci_low, v.ci_high = sorted((sign * result.ci_low, sign * result.ci_high))
        v.ci_level = 2 * confidence - 1
        v.n = result.n
        if not rule.confidence:
            return self._decide_point()
        v.difference = sign * result.difference
        v.p_value = result.p_value
        v.minimum_detectable = minimum_detectable_difference(pairs[0] - pairs[1], rule.confidence)
        v.insufficient_data = result.n < 2 or (rule.margin > 0 and v.minimum_detectable > rule.margin)

    def _decide_point(self, note: str = "") -> None:
        """Without confidence: compare the reported values (the difference is improvement-oriented)."""
        rule, v = self.rule, self.verdict
        assert v.difference is not None and isinstance(self.kind, ReferenceKind)
        gain = v.difference if self.higher_is_better else -v.difference
        ok, why = self.kind.point(gain, rule.margin)
        change = f"{_change(v.difference, rule.metric)} vs {reference_label(rule, self.spec.baseline)}"
        v.test = "point"
        v.verdict = Verdict.PASS if ok else Verdict.FAIL
        v.reason = f"{change}, {why}" + (note or " (point estimates, no confidence set)")

    def decide_from_test(self) -> None:
        """The paired verdict, once p_value (and p_adjusted under Holm) is known."""
        rule, v = self.rule, self.verdict
        assert rule.confidence is not None and v.p_value is not None and v.difference is not None
        assert isinstance(self.kind, ReferenceKind)
        p = v.p_adjusted if v.p_adjusted is not None else v.p_value
        p_text = f"p={p:.3g}" + (" Holm-adjusted" if v.p_adjusted is not None else "")
        interval = f"[{format_number(v.ci_low)}, {format_number(v.ci_high)}]"
        evidence = (
            f"{_change(v.difference, rule.metric)} vs {reference_label(rule, self.spec.baseline)} on {v.n} "
            f"paired items, {v.ci_level:.0%} CI {interval}, {p_text}"
        )
        detectable = format_number(v.minimum_detectable)
        too_little = (
            f"too little data: {v.n} items detect only a shift of {detectable} beyond the "
            f"margin with 80% power, larger than the margin {format_number(rule.margin)}"
        )
        significant = p < 1 - rule.confidence
        v.verdict, v.reason = self.kind.tested(rule, significant, v.insufficient_data, evidence, too_little)


def _change(difference: float, metric: str) -> str:
    return f"{metric} {'+' if difference >= 0 else ''}{format_number(difference)}"
