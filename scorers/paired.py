"""Paired comparisons of two models scored on the same items (pure numpy/scipy).

Why paired: item difficulty varies far more than the gap between two models, so comparing two means as
independent samples drowns a real regression in between-item variance. Differencing per item removes it.

Conventions shared by every function here:

* ``a`` is the candidate, ``b`` the reference, aligned item by item; ``difference = mean(a) - mean(b)``
  in the scores' own units, oriented so that larger is better (negate lower-is-better metrics first).
* ``alternative="less"`` is the ``no_worse_than`` test: H0 ``difference >= -margin`` against
  H1 ``difference < -margin``; a small p-value says the drop beyond the allowed margin is real.
* ``alternative="greater"`` is the ``better_than`` test: H0 ``difference <= margin`` against
  H1 ``difference > margin``; a small p-value says the gain (beyond ``margin``) is real.
* ``confidence`` is the one-sided level: the test rejects when ``p_value < 1 - confidence``. The
  interval returned is the two-sided ``2 * confidence - 1`` interval (90% for 0.95), whose ends are the
  one-sided ``confidence`` bounds, so "rejects" and "the interval lies beyond the margin" agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

Alternative = Literal["less", "greater"]
_MAX_CELLS_PER_CHUNK = 4_000_000  # bounds bootstrap memory to ~32 MB whatever n and resamples are


@dataclass(frozen=True)
class PairedResult:
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int


def _aligned(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"paired samples must be 1-D and of equal length (got {x.shape} and {y.shape})")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("paired samples must be finite")
    return x, y


def _check_confidence(confidence: float) -> float:
    if not 0.5 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0.5, 1), got {confidence}")
    return 1.0 - confidence


def paired_bootstrap(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    margin: float = 0.0,
    resamples: int = 2000,
    seed: int | Sequence[int] = 0,
    confidence: float = 0.95,
    alternative: Alternative = "less",
) -> PairedResult:
    """Paired bootstrap of the mean per-item difference, for continuous scores (ROUGE, F1, pass@k).

    Items are resampled with replacement, keeping each item's pair together. The p-value inverts the
    percentile interval: for "less" it is the share of bootstrap means at or above ``-margin`` (with the
    usual +1 correction, so it is never 0), for "greater" the share at or below ``margin``.
    """
    alpha = _check_confidence(confidence)
    x, y = _aligned(a, b)
    n = x.size
    if n == 0:
        raise ValueError("paired_bootstrap needs at least one pair")
    diffs = x - y
    observed = float(diffs.mean())
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    chunk = max(1, _MAX_CELLS_PER_CHUNK // n)
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        means[start:stop] = diffs[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    if alternative == "less":
        extreme = int(np.count_nonzero(means >= -margin))
    else:
        extreme = int(np.count_nonzero(means <= margin))
    p_value = (extreme + 1) / (resamples + 1)
    return PairedResult(observed, float(low), float(high), p_value, n)


def mcnemar_exact(
    a_binary: Sequence[float] | np.ndarray,
    b_binary: Sequence[float] | np.ndarray,
    *,
    margin: float = 0.0,
    confidence: float = 0.95,
    alternative: Alternative = "less",
    scale: float = 1.0,
) -> PairedResult:
    """Exact McNemar test for pass/fail items (exact-match, pass@1 with one sample).

    Only discordant items carry information: with ``w`` items the candidate alone gets right and ``l``
    items only the reference gets right, ``w ~ Binomial(w + l, q)`` given ``w + l``. With margin 0 this
    is the exact McNemar (binomial) test, H0 ``q = 1/2``. With a margin, the boundary of H0 is
    ``q0 = 1/2 -+ margin * n / (2 * (w + l))``, taking the observed discordance rate as the nuisance
    parameter (a conditional test, exact given that rate). The interval is the Clopper-Pearson interval
    of ``q`` mapped to ``difference = (2q - 1) * (w + l) / n``, so it agrees with the p-value.

    Values are 0 or ``scale`` (1 for fractions, 100 for the report's percentages); difference, interval
    and ``margin`` are in the same units.
    """
    alpha = _check_confidence(confidence)
    x, y = _aligned(a_binary, b_binary)
    if not (np.isin(x, (0.0, scale)).all() and np.isin(y, (0.0, scale)).all()):
        raise ValueError(f"mcnemar_exact needs values that are 0 or {scale}")
    n = x.size
    if n == 0:
        raise ValueError("mcnemar_exact needs at least one pair")
    wins = int(np.count_nonzero((x > 0) & (y == 0)))
    losses = int(np.count_nonzero((x == 0) & (y > 0)))
    discordant = wins + losses
    if discordant == 0:
        return PairedResult(0.0, 0.0, 0.0, 1.0, n)
    unit = scale * discordant / n  # difference per unit of (2q - 1)
    shift = (margin / scale) * n / (2 * discordant)
    if alternative == "less":
        q0 = 0.5 - shift
        p_value = 1.0 if q0 <= 0 else float(stats.binom.cdf(wins, discordant, q0))
    else:
        q0 = 0.5 + shift
        p_value = 1.0 if q0 >= 1 else float(stats.binom.sf(wins - 1, discordant, q0))
    q_low = 0.0 if wins == 0 else float(stats.beta.ppf(alpha, wins, discordant - wins + 1))
    q_high = 1.0 if wins == discordant else float(stats.beta.ppf(1 - alpha, wins + 1, discordant - wins))
    return PairedResult(
        difference=scale * (wins - losses) / n,
        ci_low=(2 * q_low - 1) * unit,
        ci_high=(2 * q_high - 1) * unit,
        p_value=min(1.0, p_value),
        n=n,
    )


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order as given): reject where adjusted p < alpha.

    Controls the family-wise error rate over all the tests without assuming independence.
    """
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate(p[order] * (m - np.arange(m)))
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted.tolist()


def minimum_detectable_difference(
    diffs: Sequence[float] | np.ndarray, confidence: float, power: float = 0.8
) -> float:
    """Smallest true shift beyond the margin the one-sided paired test finds with the given power.

    ``(t[confidence] + t[power]) * sd(diffs) / sqrt(n)`` with n - 1 degrees of freedom: the usual
    normal-approximation power formula for a paired mean, with t quantiles to stay honest at small n.
    Infinite with fewer than two pairs, since the variance is then unknown.
    """
    _check_confidence(confidence)
    d = np.asarray(diffs, dtype=float)
    n = d.size
    if n < 2:
        return math.inf
    dof = n - 1
    sd = float(d.std(ddof=1))
    return float((stats.t.ppf(confidence, dof) + stats.t.ppf(power, dof)) * sd / math.sqrt(n))
