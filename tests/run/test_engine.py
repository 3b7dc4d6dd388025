"""The generation engine against a real OpenAI-compatible server on 127.0.0.1 and a real store."""

from __future__ import annotations

from pathlib import Path

from benchgate.providers import create_provider
from benchgate.run.engine import ShardContext, generate_shard
from benchgate.spec.example import Example
from benchgate.spec.request import ModelSpec
from benchgate.store import Store
from tests.support.chat_servers import ChatServer

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def duplicate_prompt_examples() -> list[Example]:
    """Three items, two of which ask exactly the same thing (SQuAD v2 has such questions)."""
    other = [{"role": "user", "content": "And of Italy?"}]
    return [
        Example("q-1", QUESTION, ["Paris"]),
        Example("q-2", QUESTION, ["Paris"]),
        Example("q-3", other, ["Rome"]),
    ]


async def test_a_cached_rerun_keeps_every_item_when_prompts_repeat(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "store"))
    examples = duplicate_prompt_examples()
    with ChatServer() as server:
        spec = ModelSpec(id="m", provider="openai-compatible", model="echo", base_url=server.url + "/v1")
        first_context = ShardContext("bmk-first", "qa", "ds", "rev-1", 1, "reuse")
        provider = create_provider(spec)
        try:
            writer = store.generation_writer(spec.id, "qa")
            first = await generate_shard(provider, examples, first_context, {}, writer)
            writer.close()
            cached = store.reusable_generations(spec.id, "qa")
            second_context = ShardContext("bmk-second", "qa", "ds", "rev-1", 1, "reuse")
            writer = store.generation_writer(spec.id, "qa")
            second = await generate_shard(provider, examples, second_context, cached, writer)
            writer.close()
        finally:
            await provider.aclose()
    assert first.requests == 3 and len(server.requests) == 3
    assert second.requests == 0 and second.reused == 3
    assert sorted(row["example_id"] for row in second.rows) == ["q-1", "q-2", "q-3"]
    by_id = {row["example_id"]: row["output"] for row in second.rows}
    assert by_id == {row["example_id"]: row["output"] for row in first.rows}


async def test_an_answer_with_a_lone_surrogate_is_stored_with_a_replacement_character(tmp_path: Path) -> None:
    """JSON may escape half a surrogate pair ("\\ud800"); UTF-8 cannot hold it, so neither could the
    journal or Parquet: a hostile or broken endpoint must not be able to fail the shard with it."""
    store = Store(str(tmp_path / "store"))
    with ChatServer(reply=lambda request: "half a pair: \ud800 then 😀") as server:
        spec = ModelSpec(id="m", provider="openai-compatible", model="echo", base_url=server.url + "/v1")
        provider = create_provider(spec)
        try:
            writer = store.generation_writer(spec.id, "qa")
            generated = await generate_shard(
                provider,
                [Example("q-1", QUESTION, ["Paris"])],
                ShardContext("bmk", "qa", "ds", "r", 1, "reuse"),
                {},
                writer,
            )
            writer.close()
        finally:
            await provider.aclose()
    assert generated.rows[0]["output"] == "half a pair: \ufffd then 😀"
    assert [row["output"] for row in store.read_generations("m", "qa")] == ["half a pair: \ufffd then 😀"]
