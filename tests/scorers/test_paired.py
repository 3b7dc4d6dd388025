"""Paired tests against scipy: exact McNemar vs binomtest, bootstrap vs t-test and scipy bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from scorers.paired import holm, mcnemar_exact, minimum_detectable_difference, paired_bootstrap


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("alternative", ["less", "greater"])
def test_mcnemar_margin_zero_is_scipy_binomtest_on_discordant_pairs(seed: int, alternative: str) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    wins, losses = int(((a == 1) & (b == 0)).sum()), int(((a == 0) & (b == 1)).sum())
    result = mcnemar_exact(a, b, alternative=alternative)
    reference = stats.binomtest(wins, wins + losses, 0.5, alternative=alternative).pvalue
    assert result.p_value == pytest.approx(reference, rel=1e-12)
    assert result.difference == pytest.approx((wins - losses) / 200)
    assert result.n == 200


def test_mcnemar_percent_scale_gives_same_p_and_scaled_difference() -> None:
    a = np.r_[np.ones(30), np.zeros(12), np.ones(50), np.zeros(8)]
    b = np.r_[np.zeros(30), np.ones(12), np.ones(50), np.zeros(8)]
    fraction = mcnemar_exact(a, b, margin=0.02, alternative="greater")
    percent = mcnemar_exact(a * 100, b * 100, margin=2.0, alternative="greater", scale=100.0)
    assert percent.p_value == pytest.approx(fraction.p_value)
    assert percent.difference == pytest.approx(100 * fraction.difference)
    assert (percent.ci_low, percent.ci_high) == pytest.approx((100 * fraction.ci_low, 100 * fraction.ci_high))


@pytest.mark.parametrize("wins,losses", [(5, 25), (10, 20), (15, 15), (40, 10), (0, 9), (9, 0)])
@pytest.mark.parametrize("margin", [0.0, 0.02, 0.05])
def test_mcnemar_p_value_agrees_with_its_interval(wins: int, losses: int, margin: float) -> None:
    """Rejecting at 95% one-sided <=> the 90% interval lies beyond the margin (up to the boundary case)."""
    a = np.r_[np.ones(wins), np.zeros(losses), np.ones(300)]
    b = np.r_[np.zeros(wins), np.ones(losses), np.ones(300)]
    less = mcnemar_exact(a, b, margin=margin, confidence=0.95, alternative="less")
    greater = mcnemar_exact(a, b, margin=margin, confidence=0.95, alternative="greater")
    assert (less.p_value < 0.05) == (less.ci_high < -margin)
    assert (greater.p_value < 0.05) == (greater.ci_low > margin)
    assert less.ci_low <= less.difference <= less.ci_high


def test_mcnemar_larger_margin_never_makes_a_drop_more_significant() -> None:
    a = np.r_[np.ones(10), np.zeros(30), np.ones(160)]
    b = np.r_[np.zeros(10), np.ones(30), np.ones(160)]
    p = [mcnemar_exact(a, b, margin=m).p_value for m in (0.0, 0.02, 0.05, 0.1, 0.2)]
    assert p == sorted(p)
    assert p[-1] == 1.0  # a 20-point margin exceeds the 20% discordance: no drop beyond it is possible


def test_mcnemar_identical_models_have_no_evidence() -> None:
    a = np.r_[np.ones(50), np.zeros(50)]
    result = mcnemar_exact(a, a.copy())
    assert (result.difference, result.ci_low, result.ci_high, result.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_mcnemar_rejects_non_binary_values() -> None:
    with pytest.raises(ValueError, match="0 or 1"):
        mcnemar_exact([0, 0.5], [1, 0])


@pytest.mark.parametrize("shift,margin", [(-0.3, 0.0), (0.0, 0.0), (-0.5, 0.2), (0.2, 0.0)])
def test_bootstrap_p_matches_one_sided_paired_t_test_at_large_n(shift: float, margin: float) -> None:
    rng = np.random.default_rng(7)
    base = rng.normal(50, 20, 4000)  # item difficulty: large, and shared by both models
    a = base + shift + rng.normal(0, 3, 4000)
    b = base + rng.normal(0, 3, 4000)
    result = paired_bootstrap(a, b, margin=margin, resamples=4000, seed=1, alternative="less")
    t = stats.ttest_1samp(a - b + margin, 0.0, alternative="less").pvalue
    assert result.p_value == pytest.approx(t, abs=0.02)
    greater = paired_bootstrap(a, b, margin=margin, resamples=4000, seed=1, alternative="greater")
    t_greater = stats.ttest_1samp(a - b - margin, 0.0, alternative="greater").pvalue
    assert greater.p_value == pytest.approx(t_greater, abs=0.02)


def test_bootstrap_interval_matches_scipy_percentile_bootstrap() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.uniform(0, 1, 800), rng.uniform(0, 1, 800)
    ours = paired_bootstrap(a, b, resamples=4000, seed=0, confidence=0.95)
    theirs = stats.bootstrap(
        (a - b,), np.mean, confidence_level=0.90, method="percentile", n_resamples=4000, random_state=0
    ).confidence_interval
    assert ours.difference == pytest.approx(float(np.mean(a - b)))
    assert ours.ci_low == pytest.approx(theirs.low, abs=0.004)
    assert ours.ci_high == pytest.approx(theirs.high, abs=0.004)


def test_bootstrap_is_seeded_and_chunked_identically_for_any_size() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=5000), rng.normal(size=5000)  # 5000 x 2000 cells: several chunks
    first = paired_bootstrap(a, b, resamples=2000, seed=42)
    assert first == paired_bootstrap(a, b, resamples=2000, seed=42)
    assert first != paired_bootstrap(a, b, resamples=2000, seed=43)


def test_bootstrap_rejects_unpaired_input() -> None:
    with pytest.raises(ValueError, match="equal length"):
        paired_bootstrap([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="finite"):
        paired_bootstrap([1.0, math.nan], [1.0, 2.0])


def test_holm_known_values() -> None:
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([]) == []
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=12))
def test_holm_is_between_raw_and_bonferroni_and_keeps_the_order(p: list[float]) -> None:
    adjusted = holm(p)
    for raw, adj in zip(p, adjusted, strict=True):
        assert raw - 1e-12 <= adj <= min(1.0, raw * len(p)) + 1e-12
    order = np.argsort(p, kind="stable")
    assert all(np.diff(np.asarray(adjusted)[order]) >= -1e-12)


def test_minimum_detectable_difference_has_the_power_it_claims() -> None:
    """A true shift of exactly the MDE is found by the one-sided test in about 80% of samples."""
    rng = np.random.default_rng(11)
    n, sd = 60, 10.0
    observed = rng.normal(0, 1, n)
    observed = (observed - observed.mean()) / observed.std(ddof=1) * sd  # sample sd exactly `sd`
    mde = minimum_detectable_difference(observed, 0.95)
    samples = rng.normal(-mde, sd, size=(4000, n))
    rejected = stats.ttest_1samp(samples, 0.0, axis=1, alternative="less").pvalue < 0.05
    assert rejected.mean() == pytest.approx(0.8, abs=0.03)


def test_minimum_detectable_difference_needs_two_pairs_and_shrinks_with_n() -> None:
    assert minimum_detectable_difference([1.0], 0.95) == math.inf
    rng = np.random.default_rng(0)
    d = rng.normal(0, 5, 4000)
    assert minimum_detectable_difference(d[:100], 0.95) > 3 * minimum_detectable_difference(d, 0.95)
