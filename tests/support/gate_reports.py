"""Reports (results rows plus details) built from per-item scores, for the gate's tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from benchgate.spec.report import Report

Scores = dict[tuple[str, str], pd.DataFrame]  # (model, task) -> one row per item


def frame(values: Any, metric: str = "f1-score", ids: Any = None) -> pd.DataFrame:
    values = np.asarray(values, dtype=float)
    ids = [f"q{i}" for i in range(values.size)] if ids is None else list(ids)
    return pd.DataFrame({"example_id": ids, metric: values})


def build_report(
    scores: Scores,
    *,
    kinds: dict[str, str] | None = None,
    lower_is_better: tuple[str, ...] = (),
    details: dict[tuple[str, str], dict[str, Any]] | None = None,
) -> Report:
    """Report values are the per-item means, as the real aggregation computes them."""
    kinds = kinds or {}
    report: dict[str, Any] = {
        "benchmarkId": "bmk-0123456789ab",
        "name": "gate test",
        "status": "completed",
        "completedAt": "2026-01-01T00:00:00Z",
        "report": {},
        "details": {},
    }
    for (model, task), scored in scores.items():
        metrics = [c for c in scored.columns if c not in ("example_id", "n_samples", "n_correct")]
        section = report["report"].setdefault(task, {"dataset": f"{task}-data", "results": []})
        section["results"].append({"model": model, **{m: float(scored[m].mean()) for m in metrics}})
        detail = {
            "n": len(scored),
            "n_errors": 0,
            "error_rate": 0.0,
            "inconclusive": False,
            "dataset_revision": "rev1",
            "metrics": {
                m: {
                    "value": float(scored[m].mean()),
                    "ci_low": float(scored[m].mean()) - 1,
                    "ci_high": float(scored[m].mean()) + 1,
                    "n": len(scored),
                }
                for m in metrics
            },
            "latency_ms": {"p50": 100.0, "p95": 250.0},
            "tokens": {"input": 1000, "output": 500},
            "cost_usd": 1.25,
            "higher_is_better": {m: m not in lower_is_better for m in metrics},
            "per_item_kind": {m: kinds.get(m, "continuous") for m in metrics},
        }
        detail.update((details or {}).get((model, task), {}))
        report["details"].setdefault(task, {})[model] = detail
    return Report.model_validate(report)


def loader(scores: Scores):
    def load_scores(model: str, task: str) -> pd.DataFrame | None:
        scored = scores.get((model, task))
        return None if scored is None else scored.copy()

    return load_scores


def binary_pair(
    wins: int, losses: int, both: int, neither: int, scale: float = 100.0
) -> tuple[np.ndarray, ...]:
    """Candidate and reference pass/fail per item with the given discordant and concordant counts."""
    a = np.r_[np.full(wins, scale), np.zeros(losses), np.full(both, scale), np.zeros(neither)]
    b = np.r_[np.zeros(wins), np.full(losses, scale), np.full(both, scale), np.zeros(neither)]
    return a, b
