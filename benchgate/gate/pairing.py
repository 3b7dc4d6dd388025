"""Per-item evidence for relative rules: both models' scores paired by item, and the paired test on them.

Pairing by item makes item difficulty cancel out, so only the models' difference is tested
(scorers/paired.py has the tests themselves).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from benchgate.gate.kinds import ReferenceKind
from benchgate.spec.gate import GateRule
from scorers.paired import PairedResult, mcnemar_exact, paired_bootstrap

ScoreLoader = Callable[[str, str], "pd.DataFrame | None"]


def paired_scores(
    load_scores: ScoreLoader, rule: GateRule, reference: str, higher_is_better: bool
) -> tuple[np.ndarray, np.ndarray] | str:
    """Candidate's and reference's per-item scores, oriented so larger is better, or why there are none."""
    metric, task = rule.metric, rule.task
    frames = {}
    for model in (rule.model, reference):
        frame = load_scores(model, task)
        if frame is None or "example_id" not in frame or metric not in frame:
            return f"no per-item {metric} scores stored for {model} on {task}"
        frames[model] = frame[["example_id", metric]].dropna()
    try:
        joined = frames[rule.model].merge(
            frames[reference], on="example_id", suffixes=("_a", "_b"), validate="one_to_one"
        )
    except pd.errors.MergeError:
        return f"per-item scores for {task} repeat an example_id; cannot pair items"
    if joined.empty:
        return f"{rule.model} and {reference} share no scored items on {task}"
    sign = 1.0 if higher_is_better else -1.0
    return sign * joined[f"{metric}_a"].to_numpy(float), sign * joined[f"{metric}_b"].to_numpy(float)


def paired_test(
    a: np.ndarray,
    b: np.ndarray,
    rule: GateRule,
    kind: ReferenceKind,
    *,
    per_item_kind: str | None,
    confidence: float,
    resamples: int,
    seed: tuple[int, int],
) -> tuple[str, PairedResult]:
    """McNemar's exact test for pass/fail items, else the paired bootstrap; returns (test name, result)."""
    scale = 100.0 if max(np.abs(a).max(), np.abs(b).max()) > 1 else 1.0
    binary = bool(np.isin(a, (0.0, scale)).all() and np.isin(b, (0.0, scale)).all())
    if binary and per_item_kind in (None, "binary"):
        result = mcnemar_exact(
            a, b, margin=rule.margin, confidence=confidence, alternative=kind.alternative, scale=scale
        )
        return "mcnemar-exact", result
    result = paired_bootstrap(
        a,
        b,
        margin=rule.margin,
        resamples=resamples,
        seed=seed,
        confidence=confidence,
        alternative=kind.alternative,
    )
    return "paired-bootstrap", result
