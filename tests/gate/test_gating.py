"""The gate's rules, verdicts and decision, including its statistical validity on simulated models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from benchgate.errors import EXIT_GATE_FAILED, EXIT_INCONCLUSIVE, EXIT_OK, RequestError
from benchgate.gate.evaluate import evaluate_gate
from benchgate.gate.rules_file import check_rules_against_report, load_gate_spec
from benchgate.spec.gate import GateRule, GateSpec
from benchgate.spec.report import DeliveryResult, GateDecision
from tests.support.gate_reports import binary_pair, build_report, frame, loader

QA, SUM, CODE = "question-answering", "text-summarization", "code-generation"


def gate(scores, rules, *, baseline="base", report=None, **spec_fields) -> GateDecision:
    spec = GateSpec(baseline=baseline, rules=[GateRule(**r) for r in rules], **spec_fields)
    return evaluate_gate(report or build_report(scores), spec, loader(scores))


def f1_models(n: int = 400, drop: float = 0.0, noise: float = 0.2, seed: int = 0):
    """Per-item F1 (0-100) of a baseline and a candidate sharing item difficulty, candidate shifted down."""
    rng = np.random.default_rng(seed)
    ease = rng.beta(5, 1.5, n)
    base = 100 * np.clip(ease + rng.normal(0, noise, n), 0, 1)
    cand = 100 * np.clip(ease - drop + rng.normal(0, noise, n), 0, 1)
    return {("base", QA): frame(base), ("cand", QA): frame(cand)}


# --- absolute rules


def test_at_least_and_at_most_compare_the_reported_value() -> None:
    scores = {("cand", QA): frame([80, 90, 100])}
    decision = gate(
        scores,
        [
            {"model": "cand", "task": QA, "metric": "f1-score", "at_least": 85},
            {"model": "cand", "task": QA, "metric": "f1-score", "at_least": 95},
            {"model": "cand", "task": QA, "metric": "f1-score", "at_most": 90},
        ],
    )
    assert [r.verdict for r in decision.rules] == ["pass", "fail", "pass"]
    assert decision.decision == "fail"
    first = decision.rules[0]
    assert first.observed == {"cand": 90.0}
    assert first.difference == pytest.approx(5.0)
    assert (first.ci_low, first.ci_high, first.n) == (89.0, 91.0, 3)
    assert decision.rules[1].reason == "f1-score = 90, not at least 95"


@pytest.mark.parametrize(
    "metric,limit,verdict",
    [
        ("cost_usd", 1.0, "fail"),
        ("cost_usd", 2.0, "pass"),
        ("latency_p95_ms", 300, "pass"),
        ("error_rate", 0.01, "pass"),
    ],
)
def test_details_metrics(metric: str, limit: float, verdict: str) -> None:
    scores = {("cand", QA): frame([50, 60])}
    decision = gate(scores, [{"model": "cand", "task": QA, "metric": metric, "at_most": limit}])
    assert decision.rules[0].verdict == verdict


def test_unknown_cost_is_inconclusive_not_a_pass() -> None:
    scores = {("cand", QA): frame([50, 60])}
    report = build_report(scores, details={("cand", QA): {"cost_usd": None}})
    decision = gate(
        scores, [{"model": "cand", "task": QA, "metric": "cost_usd", "at_most": 5}], report=report
    )
    assert (decision.decision, decision.rules[0].verdict) == ("inconclusive", "inconclusive")
    assert "cost_usd" in decision.rules[0].reason


def test_relative_rule_on_cost_compares_point_estimates_lower_is_better() -> None:
    scores = {("cand", QA): frame([50, 60]), ("base", QA): frame([50, 60])}
    report = build_report(scores, details={("cand", QA): {"cost_usd": 1.5}, ("base", QA): {"cost_usd": 1.0}})
    rule = {
        "model": "cand",
        "task": QA,
        "metric": "cost_usd",
        "no_worse_than": "baseline",
        "confidence": 0.95,
    }
    tight = gate(scores, [{**rule, "margin": 0.25}], report=report).rules[0]
    loose = gate(scores, [{**rule, "margin": 0.5}], report=report).rules[0]
    assert (tight.verdict, loose.verdict) == ("fail", "pass")
    assert tight.difference == pytest.approx(0.5)
    assert "point estimates compared" in tight.reason


# --- relative rules, point estimates


def test_no_worse_than_baseline_without_confidence_compares_point_estimates() -> None:
    scores = {("base", QA): frame([80, 90]), ("cand", QA): frame([79, 89])}
    rule = {"model": "cand", "task": QA, "metric": "f1-score", "no_worse_than": "baseline"}
    strict, lenient = gate(scores, [rule]).rules[0], gate(scores, [{**rule, "margin": 1.0}]).rules[0]
    assert (strict.verdict, lenient.verdict) == ("fail", "pass")
    assert strict.reference == "base" and strict.observed == {"cand": 84.0, "base": 85.0}
    assert strict.difference == pytest.approx(-1.0)
    assert strict.test == "point" and strict.p_value is None
    assert strict.ci_low is not None and strict.ci_high is not None  # paired CI shown for information


def test_lower_is_better_metric_is_oriented() -> None:
    scores = {("base", QA): frame([10.0, 12.0], "toxicity"), ("cand", QA): frame([13.0, 15.0], "toxicity")}
    report = build_report(scores, lower_is_better=("toxicity",))
    rule = {"model": "cand", "task": QA, "metric": "toxicity", "no_worse_than": "base", "margin": 2.0}
    verdict = gate(scores, [rule], report=report).rules[0]
    assert verdict.verdict == "fail" and verdict.difference == pytest.approx(3.0)
    better = gate(
        scores, [{"model": "base", "task": QA, "metric": "toxicity", "better_than": "cand"}], report=report
    )
    assert better.rules[0].verdict == "pass"


def test_better_than_point_estimate_needs_more_than_the_margin() -> None:
    scores = {("base", QA): frame([80, 90]), ("cand", QA): frame([81, 91])}
    rule = {"model": "cand", "task": QA, "metric": "f1-score", "better_than": "base"}
    assert gate(scores, [rule]).rules[0].verdict == "pass"
    assert gate(scores, [{**rule, "margin": 1.0}]).rules[0].verdict == "fail"


# --- relative rules, paired tests


def test_paired_regression_fails_with_evidence() -> None:
    scores = f1_models(n=1000, drop=0.06)
    rule = {"model": "cand", "task": QA, "metric": "f1-score", "no_worse_than": "baseline", "margin": 1.0}
    verdict = gate(scores, [{**rule, "confidence": 0.95}]).rules[0]
    assert verdict.verdict == "fail" and verdict.test == "paired-bootstrap"
    assert verdict.n == 1000 and verdict.ci_level == pytest.approx(0.90)
    assert verdict.ci_high < -1.0 and verdict.p_value < 0.05
    assert verdict.ci_low < verdict.difference < verdict.ci_high
    assert "significant drop beyond the margin 1" in verdict.reason and "p=" in verdict.reason


def test_paired_same_model_passes() -> None:
    scores = f1_models(n=1000, drop=0.0)
    rule = {"model": "cand", "task": QA, "metric": "f1-score", "no_worse_than": "base", "margin": 2.0}
    verdict = gate(scores, [{**rule, "confidence": 0.95}]).rules[0]
    assert verdict.verdict == "pass" and not verdict.insufficient_data
    assert verdict.minimum_detectable < 2.0
    assert verdict.reason.startswith("no significant drop")


def test_binary_metric_uses_exact_mcnemar() -> None:
    a, b = binary_pair(wins=8, losses=22, both=150, neither=20)
    scores = {("base", QA): frame(b, "exact-match"), ("cand", QA): frame(a, "exact-match")}
    report = build_report(scores, kinds={"exact-match": "binary"})
    rule = {"model": "cand", "task": QA, "metric": "exact-match", "no_worse_than": "base", "confidence": 0.95}
    verdict = gate(scores, [rule], report=report).rules[0]
    assert verdict.test == "mcnemar-exact"
    assert verdict.p_value == pytest.approx(stats.binomtest(8, 30, 0.5, alternative="less").pvalue)
    assert verdict.difference == pytest.approx(100 * (8 - 22) / 200)
    assert verdict.verdict == "fail"


def test_pass_at_k_pairs_problems_with_the_bootstrap() -> None:
    rng = np.random.default_rng(5)
    base = rng.choice([0.0, 30.0, 70.0, 100.0], 164)
    cand = np.clip(base + rng.choice([-30.0, 0.0, 30.0], 164, p=[0.1, 0.8, 0.1]), 0, 100)
    scores = {("base", CODE): frame(base, "pass@10"), ("cand", CODE): frame(cand, "pass@10")}
    report = build_report(scores, kinds={"pass@10": "pass@k"})
    rule = {"model": "cand", "task": CODE, "metric": "pass@10", "better_than": "base", "confidence": 0.95}
    verdict = gate(scores, [rule], report=report).rules[0]
    assert verdict.test == "paired-bootstrap" and verdict.n == 164


def test_items_are_paired_by_example_id() -> None:
    base = frame([100.0, 0.0, 100.0, 50.0], ids=["a", "b", "c", "d"])
    cand = frame([0.0, 100.0, 100.0, 50.0, 30.0], ids=["b", "a", "c", "d", "e"])
    scores = {("base", QA): base, ("cand", QA): cand}
    rule = {"model": "cand", "task": QA, "metric": "f1-score", "no_worse_than": "base", "confidence": 0.95}
    verdict = gate(scores, [rule]).rules[0]
    assert verdict.n == 4  # "e" has no partner
    assert verdict.difference == pytest.approx(0.0)  # a and b swapped ids: the paired difference is 0


def test_duplicate_example_ids_cannot_be_paired() -> None:
    scores = {
        ("base", QA): frame([1.0, 2.0], ids=["a", "a"]),
        ("cand", QA): frame([1.0, 2.0], ids=["a", "b"]),
    }
    rule = {"model": "cand", "task": QA, "metric": "f1-score", "no_worse_than": "base", "confidence": 0.95}
    verdict = gate(scores, [rule]).rules[0]
    assert verdict.verdict == "inconclusive" and "repeat an example_id" in verdict.reason


def test_better_than_passes_only_on_a_significant_gain() -> None:
    gain = f1_models(n=1000, drop=-0.06)
    tie = f1_models(n=1000, drop=0.0)
    rule = {"model": "cand", "task": QA, "metric": "f1-score", "better_than": "base", "confidence": 0.95}
    assert gate(gain, [rule]).rules[0].verdict == "pass"
    tied = gate(tie, [rule]).rules[0]
    assert tied.verdict == "fail" and tied.reason.startswith("gain not significant")


def test_seeded_decision_is_reproducible() -> None:
    scores = f1_models(n=300, drop=0.01)
    rule = {"model": "cand", "task": QA, "metric": "f1-score", "no_worse_than": "base", "confidence": 0.9}
    assert gate(scores, [rule], seed=3).to_dict() == gate(scores, [rule], seed=3).to_dict()


# --- too little data


@pytest.mark.parametrize("policy,expected", [("warn", "warn"), ("fail", "fail")])
def test_insufficient_data(policy: str, expected: str) -> None:
    scores = f1_models(n=30, drop=0.0, noise=0.3, seed=2)
    rule = {
        "model": "cand",
        "task": QA,
        "metric": "f1-score",
        "no_worse_than": "base",
        "margin": 1.0,
        "confidence": 0.95,
        "on_insufficient_data": policy,
    }
    decision = gate(scores, [rule])
    verdict = decision.rules[0]
    assert verdict.insufficient_data and verdict.minimum_detectable > 1.0
    assert verdict.verdict == expected
    assert verdict.reason.startswith("too little data: 30 items detect only a shift of")
    assert decision.decision == ("pass" if policy == "warn" else "fail")  # warn counts as pass


def test_insufficient_data_never_promotes() -> None:
    scores = f1_models(n=30, drop=-0.02, noise=0.3, seed=2)
    rule = {"model": "cand", "task": QA, "metric": "f1-score", "better_than": "base", "margin": 1.0}
    verdict = gate(scores, [{**rule, "confidence": 0.95}]).rules[0]
    assert verdict.verdict == "fail" and "too little data" in verdict.reason


# --- missing data is inconclusive, never a regression


def test_missing_results_make_the_rule_inconclusive() -> None:
    scores = {("base", QA): frame([80.0, 90.0])}
    rule = {"model": "cand", "task": QA, "metric": "f1-score", "no_worse_than": "base"}
    decision = gate(scores, [rule, {"model": "base", "task": QA, "metric": "f1-score", "at_least": 50}])
    assert decision.decision == "inconclusive"
    assert [r.verdict for r in decision.rules] == ["inconclusive", "pass"]
    assert decision.rules[0].reason == f"no results for cand on {QA}"


def test_errors_beyond_budget_make_the_rule_inconclusive() -> None:
    scores = {("cand", QA): frame([80.0, 90.0])}
    report = build_report(
        scores, details={("cand", QA): {"inconclusive": True, "n_errors": 40, "error_rate": 0.4}}
    )
    decision = gate(
        scores, [{"model": "cand", "task": QA, "metric": "f1-score", "at_least": 99}], report=report
    )
    assert decision.decision == "inconclusive"
    assert "beyond the error budget (40 errors, error rate 40.0%)" in decision.rules[0].reason


def test_missing_per_item_scores_with_confidence_is_inconclusive() -> None:
    scores = f1_models(n=50)
    report = build_report(scores)
    del scores[("base", QA)]
    rule = {"model": "cand", "task": QA, "metric": "f1-score", "no_worse_than": "base", "confidence": 0.95}
    spec = GateSpec(rules=[GateRule(**rule)])
    verdict = evaluate_gate(report, spec, loader(scores)).rules[0]
    assert (
        verdict.verdict == "inconclusive" and "no per-item f1-score scores stored for base" in verdict.reason
    )


def test_fail_outranks_inconclusive() -> None:
    scores = {("cand", QA): frame([10.0])}
    rules = [
        {"model": "cand", "task": QA, "metric": "f1-score", "at_least": 50},
        {"model": "cand", "task": SUM, "metric": "rouge-l", "at_least": 0.3},
    ]
    assert gate(scores, rules).decision == "fail"


def test_no_rules_pass() -> None:
    assert gate({}, [], baseline=None).decision == "pass"


# --- family-wise error


def test_holm_adjusts_p_values_across_rules() -> None:
    # Two exact-match comparisons, each with one-sided p in (0.025, 0.05): significant alone, not as a family.
    a, b = binary_pair(wins=10, losses=21, both=100, neither=20)
    assert 0.025 < stats.binomtest(10, 31, 0.5, alternative="less").pvalue < 0.05
    scores = {
        ("base", QA): frame(b, "exact-match"),
        ("cand", QA): frame(a, "exact-match"),
        ("other", QA): frame(a, "exact-match"),
    }
    report = build_report(scores, kinds={"exact-match": "binary"})
    rules = [
        {"model": m, "task": QA, "metric": "exact-match", "no_worse_than": "base", "confidence": 0.95}
        for m in ("cand", "other")
    ]
    alone = gate(scores, rules, report=report)
    family = gate(scores, rules, report=report, family_wise="holm")
    assert [r.verdict for r in alone.rules] == ["fail", "fail"]
    assert [r.verdict for r in family.rules] == ["pass", "pass"]
    p = family.rules[0].p_value
    assert [r.p_adjusted for r in family.rules] == pytest.approx([2 * p, 2 * p])
    assert "Holm-adjusted" in family.rules[0].reason
    assert alone.rules[0].p_adjusted is None


# --- statistical validity (simulated models)


def test_null_no_worse_than_fails_in_at_most_6_percent() -> None:
    """Two models with the same per-item distribution: a 95% no_worse_than (margin 0) rarely fails."""
    rule = GateRule(
        model="cand", task=QA, metric="f1-score", no_worse_than="base", margin=0.0, confidence=0.95
    )
    spec = GateSpec(rules=[rule], bootstrap_samples=1000)
    failures = 0
    for seed in range(200):
        scores = f1_models(n=500, drop=0.0, seed=seed)
        failures += evaluate_gate(build_report(scores), spec, loader(scores)).decision == "fail"
    assert failures / 200 <= 0.06


def _shift_for_drop(points: float, noise: float = 0.2) -> float:
    """The latent shift that lowers mean F1 by `points` under clipping (large-sample calibration)."""
    rng = np.random.default_rng(123)
    latent = rng.beta(5, 1.5, 400_000) + rng.normal(0, noise, 400_000)
    reference = np.clip(latent, 0, 1).mean()
    low, high = 0.0, 0.2
    for _ in range(30):
        mid = (low + high) / 2
        low, high = (
            (mid, high) if 100 * (reference - np.clip(latent - mid, 0, 1).mean()) < points else (low, mid)
        )
    return (low + high) / 2


def test_real_three_point_f1_regression_is_detected_at_least_90_percent() -> None:
    shift = _shift_for_drop(3.0)
    rule = GateRule(
        model="cand", task=QA, metric="f1-score", no_worse_than="base", margin=0.0, confidence=0.95
    )
    spec = GateSpec(rules=[rule], bootstrap_samples=1000)
    detected, drops = 0, []
    for seed in range(100):
        scores = f1_models(n=1000, drop=shift, seed=1000 + seed)
        decision = evaluate_gate(build_report(scores), spec, loader(scores))
        detected += decision.decision == "fail"
        drops.append(-decision.rules[0].difference)
    assert np.mean(drops) == pytest.approx(3.0, abs=0.3)
    assert detected / 100 >= 0.90


# --- rules files and exit codes


def test_load_gate_spec_reads_yaml(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "baseline: gpt-4\nfamily_wise: holm\nrules:\n"
        "  - {model: ft, task: question-answering, metric: f1-score, no_worse_than: baseline, margin: 1,"
        " confidence: 0.95}\n"
        "on_pass: [{url: 'https://deploy.example/hook', secret_env: HOOK_SECRET}]\n"
    )
    spec = load_gate_spec(path)
    assert spec.baseline == "gpt-4" and spec.rules[0].margin == 1 and spec.family_wise == "holm"


@pytest.mark.parametrize(
    "text,problem",
    [
        ("rules:\n  - {model: m, task: t, metric: f, at_lest: 3}\n", "rules[0].at_lest: unknown key"),
        ("rules:\n  - {model: m, task: t, metric: f}\n", "rules[0]: give exactly one of"),
        (
            "rules:\n  - {model: m, task: t, metric: f, no_worse_than: baseline}\n",
            "rules[0]: compares with 'baseline'",
        ),
        (
            "rules:\n  - {model: m, task: t, metric: f, at_least: 3, confidence: 0.9}\n",
            "rules[0]: confidence: only for no_worse_than",
        ),
        ("on_fail: [{url: 'not a url'}]\n", "on_fail[0].url:"),
        ("- just a list\n", "(top level): expected a mapping"),
    ],
)
def test_load_gate_spec_names_the_field(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(RequestError) as error:
        load_gate_spec(path)
    assert any(p.startswith(problem) for p in error.value.problems), error.value.problems


def test_check_rules_against_report() -> None:
    report = build_report({("base", QA): frame([1.0]), ("cand", QA): frame([1.0])})
    spec = GateSpec(
        baseline="gpt-5",
        rules=[
            GateRule(model="cand", task=QA, metric="f1-score", at_least=1),
            GateRule(model="nope", task=QA, metric="cost_usd", at_most=1),
            GateRule(model="cand", task="translation", metric="bleu", at_least=1),
            GateRule(model="cand", task=QA, metric="rouge-l", better_than="ghost"),
        ],
    )
    problems = check_rules_against_report(spec, report)
    assert problems[0].startswith("baseline: unknown model 'gpt-5'")
    assert any(p.startswith("rules[1].model: unknown model 'nope'") for p in problems)
    assert any(p.startswith("rules[2].task: unknown evaluation task 'translation'") for p in problems)
    assert any(p.startswith("rules[3].better_than: unknown model 'ghost'") for p in problems)
    assert any(p.startswith("rules[3].metric: 'rouge-l' is not reported") for p in problems)
    assert not any(p.startswith("rules[0]") for p in problems)


def test_exit_codes() -> None:
    hook = {"url": "https://x/h", "delivery_id": "id", "status": 500, "attempts": 3, "error": "HTTP 500"}
    failed_hook = DeliveryResult(**hook, ok=False, required=True)
    optional_hook = DeliveryResult(**hook, ok=False, required=False)

    def decision(outcome: str, *hooks: DeliveryResult) -> GateDecision:
        return GateDecision(decision=outcome, rules=[], deliveries=list(hooks))

    assert decision("pass").exit_code() == EXIT_OK
    assert decision("fail").exit_code() == EXIT_GATE_FAILED
    assert decision("inconclusive").exit_code() == EXIT_INCONCLUSIVE
    assert decision("pass", failed_hook).exit_code() == EXIT_INCONCLUSIVE
    assert decision("pass", failed_hook).exit_code(fail_on_delivery_error=False) == EXIT_OK
    assert decision("pass", optional_hook).exit_code() == EXIT_OK


def test_decision_dict_is_strict_json() -> None:
    scores = f1_models(n=1)
    rule = {"model": "cand", "task": QA, "metric": "f1-score", "no_worse_than": "base", "confidence": 0.95}
    decision = gate(scores, [rule])
    assert decision.rules[0].insufficient_data  # one item: the variance, and so the MDE, is unknown
    data = json.loads(json.dumps(decision.to_dict(), allow_nan=False))
    assert data["rules"][0]["minimum_detectable"] is None and data["decision"] == "pass"
