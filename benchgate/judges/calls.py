"""Judge calls through the generation engine, with their totals for the report's details."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jinja2

from benchgate.evaltasks.custom import templating
from benchgate.providers import Provider, create_provider
from benchgate.run.engine import ShardContext, generate_shard
from benchgate.run.evaluation import GenerationStats
from benchgate.spec.example import Example
from benchgate.spec.request import BenchmarkRequest
from benchgate.store import Store

JUDGE_REVISION = "judge"
"""Judge prompts hold all their inputs, so the dataset's revision adds nothing to their cache keys."""


def judge_partition(task: str) -> str:
    return f"{task}~judge"


def conversation_text(messages: list[dict[str, str]]) -> str:
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)


def base_variables(example: Example) -> dict[str, Any]:
    """What every judge template sees of an item: the fields it names, the conversation, the references."""
    user = [m["content"] for m in example.messages if m["role"] == "user"]
    return {
        **example.fields.get("judge_inputs", {}),
        "conversation": conversation_text(example.messages),
        "input": user[-1] if user else "",
        "reference": example.references[0] if example.references else "",
        "references": list(example.references),
    }


class Template:
    """A judge prompt template in the custom tasks' limited sandbox; render() raises ValueError."""

    def __init__(self, source: str) -> None:
        self._template = templating.compile_template(templating.environment({}), source)

    def render(self, variables: Mapping[str, Any]) -> str:
        try:
            return templating.render(self._template, variables)
        except (
            templating.RenderLimit,
            jinja2.TemplateError,
            TypeError,
            LookupError,
            AttributeError,
        ) as error:
            raise ValueError(f"the judge prompt could not be rendered ({type(error).__name__})") from None


class JudgeCalls:
    """Asks judge models through the engine; one provider per judge model, its cache read once."""

    def __init__(
        self, request: BenchmarkRequest, task: str, dataset: str, benchmark_id: str, store: Store
    ) -> None:
        self.request, self.task, self.store = request, task, store
        self.context = ShardContext(
            benchmark_id, judge_partition(task), dataset, JUDGE_REVISION, 1, request.cache
        )
        self._providers: dict[str, Provider] = {}
        self._cached: dict[str, dict[str, dict[str, Any]]] = {}
        self.stats: dict[str, GenerationStats] = {}
        self.errors = 0

    async def ask(self, judge_id: str, prompts: dict[str, str]) -> dict[str, dict[str, Any]]:
        """Each prompt's generation row (output or error) by prompt id."""
        if judge_id not in self._providers:
            self._providers[judge_id] = create_provider(self.request.model(judge_id))
            reuse = self.request.cache == "reuse"
            partition = judge_partition(self.task)
            self._cached[judge_id] = self.store.reusable_generations(judge_id, partition) if reuse else {}
            self.stats[judge_id] = GenerationStats()
        examples = [Example(i, [{"role": "user", "content": text}], []) for i, text in prompts.items()]
        writer = self.store.generation_writer(judge_id, judge_partition(self.task))
        try:
            outcome = await generate_shard(
                self._providers[judge_id], examples, self.context, self._cached[judge_id], writer
            )
        finally:
            writer.close()
        self.stats[judge_id].add(outcome.rows, outcome.requests, outcome.reused)
        return {row["example_id"]: row for row in outcome.rows}

    def details(self) -> dict[str, Any]:
        """The judges' share of a (model, task): calls, reuse, judge errors, tokens and cost."""
        cost: float | None = None
        for judge_id, stats in self.stats.items():
            price = self.request.model(judge_id).price
            if price is not None:
                spent = (
                    stats.input_tokens * price.input_per_mtok + stats.output_tokens * price.output_per_mtok
                )
                cost = (cost or 0.0) + spent / 1e6
        every = list(self.stats.values())
        return {
            "models": list(self.stats),
            "requests": sum(s.requests for s in every),
            "reused": sum(s.reused for s in every),
            "errors": self.errors,
            "tokens": {
                "input": sum(s.input_tokens for s in every),
                "output": sum(s.output_tokens for s in every),
            },
            "cost_usd": cost,
        }

    async def aclose(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()
