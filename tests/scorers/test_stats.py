"""Bootstrap CI: deterministic, degenerate cases, and a coverage sanity check."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scorers.stats import BootstrapCounts, bootstrap_ci, mean


def test_mean() -> None:
    assert mean([1.0, 2.0, 4.0]) == pytest.approx(7 / 3)
    assert math.isnan(mean([]))


def test_deterministic_for_a_seed() -> None:
    values = list(np.random.default_rng(1).random(300))
    assert bootstrap_ci(values) == bootstrap_ci(values)
    assert bootstrap_ci(values, seed=1) != bootstrap_ci(values, seed=2)


def test_degenerate_inputs() -> None:
    assert all(math.isnan(x) for x in bootstrap_ci([]))
    assert bootstrap_ci([0.7]) == (0.7, 0.7)
    assert bootstrap_ci([3.0] * 50) == (3.0, 3.0)


def test_interval_contains_the_mean_and_narrows_with_n() -> None:
    rng = np.random.default_rng(7)
    small, large = rng.random(50), rng.random(5000)
    for data in (small, large):
        lo, hi = bootstrap_ci(list(data))
        assert lo < data.mean() < hi

    def width(data: np.ndarray) -> float:
        lo, hi = bootstrap_ci(list(data))
        return hi - lo

    assert width(large) < width(small) / 5  # ~ 1/sqrt(n): 10x narrower
    lo90, hi90 = bootstrap_ci(list(small), confidence=0.90)
    lo95, hi95 = bootstrap_ci(list(small))
    assert lo95 <= lo90 < hi90 <= hi95


def test_large_n_is_blocked_not_materialized() -> None:
    values = np.random.default_rng(3).integers(0, 2, 50_000).astype(float)
    lo, hi = bootstrap_ci(list(values), resamples=500)
    assert lo < values.mean() < hi
    assert hi - lo < 0.02


def test_coverage_is_near_nominal() -> None:
    # 95% intervals over 300 independent samples of n=60 from Bernoulli(0.3) should cover 0.3 ~95% of
    # the time; the percentile bootstrap runs a little narrow at small n, hence the loose lower bound.
    rng = np.random.default_rng(11)
    covered = 0
    trials = 300
    for i in range(trials):
        lo, hi = bootstrap_ci(list(rng.random(60) < 0.3), resamples=1000, seed=i)
        covered += lo <= 0.3 <= hi
    assert 0.88 <= covered / trials <= 0.99


@pytest.mark.parametrize(
    ("n", "resamples"),
    [(2, 2000), (999, 2000), (1001, 2000), (4001, 777), (5000, 2000), (50_000, 300), (120_000, 45)],
)
@pytest.mark.parametrize("kind", ["0/1", "floats"])
def test_the_interval_is_the_plain_percentile_bootstrap(n: int, resamples: int, kind: str) -> None:
    """Drawing in blocks, and averaging on a thread while the next block is drawn, must not change a
    single resample: the reference draws and averages one resample at a time."""
    rng = np.random.default_rng(n)
    values = rng.random(n) < 0.6 if kind == "0/1" else rng.random(n)
    assert bootstrap_ci(values, resamples=resamples) == plain_bootstrap(values, resamples)


def plain_bootstrap(values: np.ndarray, resamples: int) -> tuple[float, float]:
    """The reference: one resample at a time, drawn, gathered and averaged by NumPy directly."""
    data = np.asarray(values, dtype=np.float64)
    n = data.size
    draws = np.random.default_rng(0)
    means = [data[draws.integers(0, n, size=n)].mean() for _ in range(resamples)]
    alpha = (1 - 0.95) / 2  # a 95% interval, its tails as the float the implementation computes
    return tuple(float(q) for q in np.quantile(means, [alpha, 1 - alpha]))  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("n", "resamples"),
    [(2, 2000), (3, 500), (999, 2000), (1001, 2000), (4001, 777), (5000, 2000), (10_000, 300)],
)
@pytest.mark.parametrize("kind", ["0/100", "0/1", "small integers"])
def test_resamples_drawn_ahead_give_the_same_interval_for_integer_values(
    n: int, resamples: int, kind: str
) -> None:
    """Drawn before the values exist, summed by a float32 matrix product: the same floats as the
    plain bootstrap, for the values whose sums are exact (exact match's 0 and 100, pass or fail)."""
    rng = np.random.default_rng(n + resamples)
    if kind == "small integers":
        values = rng.integers(-50, 51, n).astype(np.float64)
    else:
        values = (rng.random(n) < 0.6) * (100.0 if kind == "0/100" else 1.0)
    counts = BootstrapCounts(n, resamples=resamples)
    assert counts.interval(values) == plain_bootstrap(values, resamples)
    assert counts.interval(values) == bootstrap_ci(values, resamples=resamples)
    assert counts.interval(list(values), confidence=0.9) == bootstrap_ci(
        values, resamples=resamples, confidence=0.9
    )


def test_resamples_drawn_ahead_decline_what_they_could_get_wrong() -> None:
    counts = BootstrapCounts(1000, resamples=50)
    rng = np.random.default_rng(5)
    assert counts.interval(rng.random(1000)) is None  # fractions: sums rounded in float32
    assert counts.interval(np.full(999, 100.0)) is None  # not the items drawn for
    with_nan = np.full(1000, 100.0)
    with_nan[3] = math.nan
    assert counts.interval(with_nan) is None
    assert counts.interval(np.full(1000, 17_000.0)) is None  # sums beyond float32's integers
    assert counts.interval(np.full(1000, 16_000.0)) == bootstrap_ci(np.full(1000, 16_000.0), resamples=50)
    with pytest.raises(ValueError, match="at least 2 items"):
        BootstrapCounts(1)


def test_resamples_drawn_ahead_decline_an_item_drawn_more_often_than_a_byte_counts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """All but impossible (an item drawn 256 times among n draws), so forced: such counts would wrap."""
    real_bincount = np.bincount

    def one_count_too_many(*args: object, **kwargs: object) -> np.ndarray:
        counts = real_bincount(*args, **kwargs)  # type: ignore[call-overload]
        counts[0] = 256
        return counts

    monkeypatch.setattr(np, "bincount", one_count_too_many)
    counts = BootstrapCounts(300, resamples=10)
    assert counts.interval(np.full(300, 100.0)) is None
