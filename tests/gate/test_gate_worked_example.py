"""docs/gate.md's worked example: a threshold or a point comparison gets it wrong, the paired gate doesn't.

Simulated SQuAD-like per-item F1 (0-100) on 1000 items whose difficulty varies a lot (item sd ~22 points).
`python -m tests.gate.test_gate_worked_example` prints the numbers quoted in docs/gate.md.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from benchgate.gate.evaluate import evaluate_gate
from benchgate.spec.gate import GateRule, GateSpec
from benchgate.spec.report import GateDecision
from tests.support.gate_reports import build_report, frame, loader

N, TASK, METRIC = 1000, "question-answering", "f1-score"
THRESHOLD = {"model": "ft-v2", "task": TASK, "metric": METRIC, "at_least": 70}
POINT = {"model": "ft-v2", "task": TASK, "metric": METRIC, "no_worse_than": "baseline", "margin": 0.5}
PAIRED = {**POINT, "confidence": 0.95}


def baseline_and(candidate: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-item F1 of the baseline and of a candidate on the same items.

    "fine-tune": answers like the baseline but loses 20 points on a random 10% of items (plus a little
    noise): a real regression of about 2 points. "equivalent": an equally good model whose per-item
    scores differ from the baseline's as much as two models' usually do (no true difference at all).
    """
    rng = np.random.default_rng(seed)
    ease = rng.beta(5, 1.5, N)
    base = 100 * np.clip(ease + rng.normal(0, 0.2, N), 0, 1)
    if candidate == "fine-tune":
        return base, np.clip(base - 20 * (rng.random(N) < 0.10) + rng.normal(0, 2, N), 0, 100)
    return base, 100 * np.clip(ease + rng.normal(0, 0.2, N), 0, 1)


def run_gate(base: np.ndarray, cand: np.ndarray, samples: int = 2000) -> GateDecision:
    scores = {("prod-v1", TASK): frame(base), ("ft-v2", TASK): frame(cand)}
    rules = [GateRule(**r) for r in (THRESHOLD, POINT, PAIRED)]
    spec = GateSpec(baseline="prod-v1", rules=rules, bootstrap_samples=samples)
    return evaluate_gate(build_report(scores), spec, loader(scores))


def welch_flags(base: np.ndarray, cand: np.ndarray) -> bool:
    """The same one-sided 95% test, but treating the two score lists as independent samples."""
    return stats.ttest_ind(cand + 0.5, base, equal_var=False, alternative="less").pvalue < 0.05


def flag_rates(candidate: str, runs: int = 100) -> dict[str, float]:
    """How often each gate blocks the candidate over independent simulated benchmarks."""
    flagged = np.zeros(4)
    for seed in range(runs):
        base, cand = baseline_and(candidate, 10_000 + seed)
        verdicts = [r.verdict == "fail" for r in run_gate(base, cand, samples=1000).rules]
        flagged += [*verdicts, welch_flags(base, cand)]
    return dict(zip(("threshold", "point", "paired", "unpaired"), (flagged / runs).tolist(), strict=True))


def first_noisy_equivalent() -> tuple[int, np.ndarray, np.ndarray]:
    """The first equivalent-model benchmark whose observed F1 is lower by more than 0.7 points."""
    for seed in range(1000):
        base, cand = baseline_and("equivalent", seed)
        if (cand - base).mean() < -0.7:
            return seed, base, cand
    raise AssertionError("no such seed")


def test_fine_tune_regression_missed_by_threshold_caught_by_paired_gate() -> None:
    base, cand = baseline_and("fine-tune", 7)
    threshold, point, paired = run_gate(base, cand).rules
    assert (base.mean(), cand.mean()) == pytest.approx((74.5, 72.1), abs=0.05)
    assert threshold.verdict == "pass"  # 72.1 >= 70: the threshold gate ships the regression
    assert point.verdict == "fail"
    assert paired.verdict == "fail" and paired.test == "paired-bootstrap"
    assert paired.difference == pytest.approx(-2.37, abs=0.01)
    assert (paired.ci_low, paired.ci_high) == pytest.approx((-2.71, -2.04), abs=0.02)
    assert paired.p_value < 0.001


def test_noisy_equivalent_model_flagged_by_point_comparison_not_by_paired_gate() -> None:
    seed, base, cand = first_noisy_equivalent()
    threshold, point, paired = run_gate(base, cand).rules
    assert seed == 5 and (cand - base).mean() == pytest.approx(-0.72, abs=0.01)
    assert threshold.verdict == "pass"
    assert point.verdict == "fail"  # a false alarm: the models are equally good by construction
    # The paired gate does not block, and says why it cannot judge a 0.5-point margin with these items.
    assert paired.verdict == "warn" and paired.insufficient_data
    assert paired.minimum_detectable == pytest.approx(1.94, abs=0.02)
    assert paired.ci_low < -0.5 < paired.ci_high and paired.p_value > 0.3


def test_block_rates_over_100_benchmarks() -> None:
    regression, equivalent = flag_rates("fine-tune"), flag_rates("equivalent")
    assert regression["threshold"] < 0.05 and regression["paired"] == 1.0
    assert regression["unpaired"] == pytest.approx(0.5)  # ignoring the pairing drowns it in item difficulty
    assert equivalent["point"] == pytest.approx(0.19)  # point comparison blocks an equal model ~1 time in 5
    assert equivalent["paired"] == pytest.approx(0.01)


if __name__ == "__main__":
    base, cand = baseline_and("fine-tune", 7)
    print(f"fine-tune: baseline {base.mean():.2f}, candidate {cand.mean():.2f}, sd(item) {base.std():.1f}")
    for verdict in run_gate(base, cand).rules:
        print(f"  {verdict.verdict:5}  {verdict.rule}: {verdict.reason}")
    welch = stats.ttest_ind(cand + 0.5, base, equal_var=False, alternative="less").pvalue
    print(f"  unpaired Welch p = {welch:.3g}")
    seed, base, cand = first_noisy_equivalent()
    print(f"equivalent (seed {seed}): baseline {base.mean():.2f}, candidate {cand.mean():.2f}")
    for verdict in run_gate(base, cand).rules:
        print(f"  {verdict.verdict:5}  {verdict.rule}: {verdict.reason}")
    print("block rates, regression:", flag_rates("fine-tune"))
    print("block rates, equivalent:", flag_rates("equivalent"))
