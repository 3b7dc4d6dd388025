"""Summaries of a model x task: inconclusive when every item failed, never a crash; their intervals."""

from __future__ import annotations

import numpy as np

from benchgate.evaltasks import make_task
from benchgate.run.evaluation import (
    MAX_RESAMPLED_AHEAD,
    ExamplesInfo,
    GenerationStats,
    intervals,
    intervals_resampled_ahead,
    resample_ahead,
    score_shard,
    summarize,
)
from benchgate.spec.example import Example
from benchgate.spec.request import ModelSpec, TaskSpec


def failed_row(example_id: str) -> dict[str, object]:
    return {
        "example_id": example_id,
        "sample_index": 0,
        "output": None,
        "error": "HTTP 503",
        "latency_ms": 5.0,
    }


def test_every_item_failing_is_an_inconclusive_summary_for_each_builtin_task() -> None:
    model = ModelSpec(id="m", provider="openai-compatible", base_url="http://127.0.0.1:9/v1")
    examples = [Example(f"q-{i}", [{"role": "user", "content": "?"}], ["a"]) for i in range(3)]
    for name in ("question-answering", "text-summarization", "code-generation"):
        task = make_task(TaskSpec(task=name))
        scores = score_shard(task, examples, [failed_row(e.example_id) for e in examples])
        stats = GenerationStats()
        stats.add([failed_row(e.example_id) for e in examples], 3, 0)
        result = summarize(task, model, ExamplesInfo("d", name, "rev", 3, 1), scores, stats.as_dict(), 0.05)
        assert result.inconclusive and result.n == 0 and result.n_errors == 3, name
        assert result.breakdown == {}, name


def test_intervals_of_binary_metrics_come_from_resamples_drawn_ahead() -> None:
    """Drawn for the unit's items before its values exist, the resamples give exact match (0 or 100
    per item) the interval `intervals` computes; F1, fractions, is left to `intervals`."""
    task = make_task(TaskSpec(task="question-answering"))
    n = 257
    resampled = resample_ahead(task, n)
    assert resampled is not None
    rng = np.random.default_rng(3)
    values = {"exact-match": (rng.random(n) < 0.4) * 100.0, "f1-score": rng.random(n) * 100.0}
    ahead, rest = intervals_resampled_ahead(resampled, values)
    assert ahead == {"exact-match": intervals(values)["exact-match"]}
    assert list(rest) == ["f1-score"] and rest["f1-score"] is values["f1-score"]
    assert intervals_resampled_ahead(None, values) == ({}, values)
    # Fewer items than drawn for (some errored): the resamples do not fit them.
    assert intervals_resampled_ahead(resampled, {"exact-match": values["exact-match"][:-1]})[0] == {}


def test_no_resamples_are_drawn_ahead_without_a_binary_metric_or_beyond_the_cap() -> None:
    summaries = make_task(TaskSpec(task="text-summarization"))
    answers = make_task(TaskSpec(task="question-answering"))
    assert resample_ahead(summaries, 100) is None  # ROUGE: fractions
    assert resample_ahead(answers, 1) is None
    assert resample_ahead(answers, MAX_RESAMPLED_AHEAD + 1) is None
