"""Summaries of a model x task when every item failed at the provider: inconclusive, never a crash."""

from __future__ import annotations

from benchgate.evaltasks import make_task
from benchgate.run.evaluation import ExamplesInfo, GenerationStats, score_shard, summarize
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
