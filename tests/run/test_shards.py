"""Prefect shards span row groups: a handful per model x task, journaled per item, scored once per content."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from benchgate.evaltasks import make_task
from benchgate.providers import create_provider
from benchgate.providers.base import Completion
from benchgate.run import evaluation
from benchgate.run.engine import ShardContext, ShardProducer
from benchgate.run.evaluation import ExamplesInfo, plan_shards, score_key, score_shard_reusing
from benchgate.run.generation import examples_untaken, items_ahead
from benchgate.spec.example import Example
from benchgate.spec.request import ModelSpec, TaskSpec
from benchgate.store import Store
from benchgate.store.store import ExampleFile
from tests.support.chat_servers import ChatServer


def info(n_examples: int, n_groups: int) -> ExamplesInfo:
    return ExamplesInfo("qa-digest", "ds", "rev", n_examples, n_groups)


@pytest.mark.parametrize(
    ("n_examples", "n_groups", "n_shards"),
    [(0, 0, 0), (20, 1, 1), (950, 10, 1), (5_000, 50, 5), (20_000, 200, 8), (50_000, 500, 8), (7, 7, 1)],
)
def test_a_handful_of_shards_cover_every_row_group_in_order(
    n_examples: int, n_groups: int, n_shards: int
) -> None:
    shards = plan_shards(info(n_examples, n_groups), None)
    assert len(shards) == n_shards
    assert [group for shard in shards for group in shard] == list(range(n_groups))
    if shards:
        assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_a_requested_shard_size_keeps_one_row_group_per_shard() -> None:
    assert plan_shards(info(5_000, 200), 25) == [range(g, g + 1) for g in range(200)]


def qa_examples(n: int) -> list[Example]:
    return [
        Example(f"q{i}", [{"role": "user", "content": f"question {i}"}], [f"echo: question {i}"])
        for i in range(n)
    ]


def noting_reads(examples: ExampleFile, read: list[int]) -> Callable[[int], list[Example]]:
    """The file's read_group, noting each row group the producer reads."""

    def read_group(group: int) -> list[Example]:
        read.append(group)
        return examples.read_group(group)

    return read_group


@contextlib.asynccontextmanager
async def producing(
    store: Store,
    server: ChatServer,
    shards: list[range],
    concurrency: int,
    *,
    items_ahead: int,
    untaken: int,
    read: list[int] | None = None,
    cached: dict[str, dict[str, Any]] | None = None,
) -> AsyncIterator[ShardProducer]:
    """A started producer of the store's examples, answered by `server` where `cached` (the store's
    answers) has none; all of it closed after."""
    spec = ModelSpec(
        id="m", provider="openai-compatible", base_url=f"{server.url}/v1", concurrency=concurrency
    )
    provider = create_provider(spec)
    examples = store.open_examples("qa-digest")
    read_group = examples.read_group if read is None else noting_reads(examples, read)
    context = ShardContext("bmk-1", "qa", "ds", "rev", 1, "reuse")
    producer = ShardProducer(provider, context, cached or {}, store, read_group, shards, items_ahead, untaken)
    producer.start()
    try:
        yield producer
    finally:
        await producer.aclose()
        await provider.aclose()
        examples.close()


async def test_a_shard_of_several_row_groups_is_journaled_per_item_and_becomes_one_part(
    tmp_path: Path,
) -> None:
    store = Store(str(tmp_path / "store"))
    store.write_examples("qa-digest", qa_examples(30), shard_size=10)
    groups = plan_shards(info(30, 3), None)
    assert groups == [range(0, 3)]
    with ChatServer(latency=0.05) as server:
        spec = ModelSpec(id="m", provider="openai-compatible", base_url=server.url + "/v1", concurrency=2)
        provider = create_provider(spec)
        context = ShardContext("bmk-1", "qa", "ds", "rev", 1, "reuse")
        examples = store.open_examples("qa-digest")
        producer = ShardProducer(
            provider,
            context,
            {},
            store,
            examples.read_group,
            groups,
            max_items_ahead=8,
            max_examples_untaken=10,
        )
        directory = Path(store.generations_dir("m", "qa"))
        producer.start()
        try:
            while server.count < 6:
                await asyncio.sleep(0.01)
            journals = list(directory.glob("*.journal"))
            assert len(journals) == 1, "one journal for the shard, whatever its row groups"
            assert 0 < len(journals[0].read_text().splitlines()) < 30, "answers are journaled as they arrive"
            assert producer.items_done < 30
            outcome = await producer.take(0)
        finally:
            await producer.aclose()
            await provider.aclose()
            examples.close()
    assert outcome.requests == 30
    assert sorted(r["example_id"] for r in outcome.rows) == sorted(e.example_id for e in qa_examples(30))
    assert producer.items_done == 30
    assert [p.suffix for p in directory.iterdir()] == [".parquet"]
    assert server.stats()["max_in_flight"] <= 2


async def test_the_first_requests_leave_before_the_producer_reads_further_row_groups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Start-up: the producer may run 20 groups ahead, but the model hears from it after the first."""
    store = Store(str(tmp_path / "store"))
    store.write_examples("qa-digest", qa_examples(200), shard_size=10)
    groups = plan_shards(info(200, 20), None)
    read: list[int] = []
    asked_after_groups: list[int] = []
    with ChatServer(latency=0.05) as server:
        spec = ModelSpec(id="m", provider="openai-compatible", base_url=server.url + "/v1", concurrency=4)
        provider = create_provider(spec)
        complete = provider.complete

        async def watched(example: Example, sample_index: int) -> Completion:
            asked_after_groups.append(len(read))
            return await complete(example, sample_index)

        monkeypatch.setattr(provider, "complete", watched)
        examples = store.open_examples("qa-digest")
        context = ShardContext("bmk-1", "qa", "ds", "rev", 1, "reuse")
        producer = ShardProducer(
            provider,
            context,
            {},
            store,
            noting_reads(examples, read),
            groups,
            max_items_ahead=200,
            max_examples_untaken=200,
        )
        producer.start()
        try:
            outcome = await producer.take(0)
        finally:
            await producer.aclose()
            await provider.aclose()
            examples.close()
    assert outcome.requests == 200 and len(read) == 20
    assert asked_after_groups[0] <= 2, f"the first request waited for {asked_after_groups[0]} row groups"


async def test_shards_no_task_has_taken_hold_at_most_the_bound(tmp_path: Path) -> None:
    """Generation outrunning the shards' tasks (slow scoring) stops reading the examples file, so the
    examples and answers waiting in memory stay bounded; each take lets it go on."""
    store = Store(str(tmp_path / "store"))
    store.write_examples("qa-digest", qa_examples(100), shard_size=10)
    shards = [range(group, group + 2) for group in range(0, 10, 2)]  # 5 shards of 20 items
    read: list[int] = []
    with ChatServer(latency=0.0) as server:
        async with producing(store, server, shards, 8, items_ahead=100, untaken=30, read=read) as producer:

            async def settle(items: int) -> None:
                while producer.items_done < items:
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.2)  # time enough to read on, were it allowed to

            # shards 0 and 1 (40 examples) are started, then shard 2 waits: 40 untaken >= 30
            await asyncio.wait_for(settle(40), 30)
            assert read == [0, 1, 2, 3] and producer.items_done == 40
            first = await producer.take(0)  # shard 0's 20 examples leave the bound
            await asyncio.wait_for(settle(60), 30)
            assert read == [0, 1, 2, 3, 4, 5] and producer.items_done == 60
            rest = [await producer.take(shard) for shard in range(1, 5)]
    assert [first.requests, *(outcome.requests for outcome in rest)] == [20] * 5
    assert read == list(range(10)) and server.count == 100


async def test_a_dataset_under_the_floor_is_never_held_back_while_prefect_starts(tmp_path: Path) -> None:
    """No shard is taken until the command's flow runs exist (a temporary server booting beside the
    generation took 12-16 s): 3,000 examples in three shards are all answered meanwhile, where the
    bound of two shards stopped them at 2,000."""
    store = Store(str(tmp_path / "store"))
    store.write_examples("qa-digest", qa_examples(3_000), shard_size=100)
    shards = plan_shards(info(3_000, 30), None)
    assert [len(groups) for groups in shards] == [10, 10, 10]
    bounds = {"items_ahead": items_ahead(16, 1_000), "untaken": examples_untaken(16, 1_000)}
    with ChatServer(latency=0.0) as server:
        async with producing(store, server, shards, 16, **bounds) as producer:

            async def everything_answered() -> None:
                while producer.items_done < 3_000:
                    await asyncio.sleep(0.02)

            await asyncio.wait_for(everything_answered(), 60)
            taken = [await producer.take(shard) for shard in range(3)]
    assert [outcome.requests for outcome in taken] == [1_000] * 3 and server.count == 3_000


async def test_only_a_shard_answered_wholly_from_the_store_is_reused_whole(tmp_path: Path) -> None:
    """A rerun's shard (every answer in the store) can be taken without a generate task; one with a
    single answer to ask cannot, and stays for its task."""
    store = Store(str(tmp_path / "store"))
    store.write_examples("qa-digest", qa_examples(40), shard_size=10)
    shards = [range(0, 2), range(2, 4)]  # 2 shards of 20 items
    bounds = {"items_ahead": 100, "untaken": 100}
    with ChatServer(latency=0.0) as server:
        async with producing(store, server, shards, 4, **bounds) as first:
            assert [(await first.take(shard)).requests for shard in range(2)] == [20, 20]
        cached = store.reusable_generations("m", "qa")
        for row in [r for r in cached.values() if r["example_id"] == "q25"]:  # one answer forgotten
            del cached[row["cache_key"]]
        async with producing(store, server, shards, 4, **bounds, cached=cached) as again:
            while again.items_done < 40:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            assert (again.reused_whole(0), again.reused_whole(1)) == (True, False)
            reused = await again.take(0)
            assert (reused.requests, reused.reused, len(reused.rows)) == (0, 20, 20)
            assert not again.reused_whole(0), "a taken shard is taken once"
            assert (await again.take(1)).requests == 1
    assert server.count == 41


async def test_a_shard_larger_than_the_bound_is_still_started_whole_for_its_task(tmp_path: Path) -> None:
    """A shard's task takes it once all of it has started (the order flows/evaluate.py follows), so the
    shard being read never waits on its own size: no deadlock, whatever the bound."""
    store = Store(str(tmp_path / "store"))
    store.write_examples("qa-digest", qa_examples(30), shard_size=10)
    with ChatServer(latency=0.0) as server:
        spec = ModelSpec(id="m", provider="openai-compatible", base_url=server.url + "/v1", concurrency=4)
        provider = create_provider(spec)
        examples = store.open_examples("qa-digest")
        context = ShardContext("bmk-1", "qa", "ds", "rev", 3, "reuse")  # 3 samples: 90 requests
        producer = ShardProducer(
            provider,
            context,
            {},
            store,
            examples.read_group,
            [range(3)],
            max_items_ahead=100,
            max_examples_untaken=10,
        )
        producer.start()
        try:
            outcome = await asyncio.wait_for(producer.take(0), 30)
        finally:
            await producer.aclose()
            await provider.aclose()
            examples.close()
    assert len(outcome.examples) == 30 and outcome.requests == 90 and server.count == 90


def echo_rows(examples: list[Example], outputs: dict[str, str]) -> list[dict[str, object]]:
    return [
        {"example_id": e.example_id, "sample_index": 0, "output": outputs[e.example_id], "error": None}
        for e in examples
    ]


def test_unchanged_outputs_reuse_the_stored_scores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(str(tmp_path / "store"))
    task = make_task(TaskSpec(task="question-answering", dataset="squad-v2"))
    examples = [Example(f"q{i}", [{"role": "user", "content": "?"}], [str(i)]) for i in range(4)]
    outputs = {e.example_id: e.references[0] for e in examples}
    rows = echo_rows(examples, outputs)
    key = score_key(task, "qa-digest", range(0, 1), rows)
    first = score_shard_reusing(store, task, key, examples, rows)

    def fail(*_: object) -> pd.DataFrame:
        raise AssertionError("scored again")

    monkeypatch.setattr(evaluation, "score_shard", fail)
    assert key == score_key(task, "qa-digest", range(0, 1), list(reversed(rows))), (
        "arrival order is not content"
    )
    again = score_shard_reusing(store, task, key, examples, rows)
    pd.testing.assert_frame_equal(first, again)
    assert list(first["exact-match"]) == [100.0] * 4

    changed = echo_rows(examples, {**outputs, "q0": "wrong"})
    assert score_key(task, "qa-digest", range(0, 1), changed) != key
    failed = [{**row, "error": "HTTP 500"} if row["example_id"] == "q1" else row for row in rows]
    assert score_key(task, "qa-digest", range(0, 1), failed) != key
    assert score_key(task, "other-digest", range(0, 1), rows) != key
    assert len(list(Path(store.root).glob("score-cache/*/*.parquet"))) == 1


def test_a_shard_whose_scores_are_reused_never_reads_its_examples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command reads a shard's examples from the store only to score it: a cached rerun does not."""
    store = Store(str(tmp_path / "store"))
    task = make_task(TaskSpec(task="question-answering", dataset="squad-v2"))
    store.write_examples("qa-digest", qa_examples(30), shard_size=10)
    rows = echo_rows(qa_examples(20), {f"q{i}": f"echo: question {i}" for i in range(20)})
    key = score_key(task, "qa-digest", range(0, 2), rows)
    with store.open_examples("qa-digest") as file:
        expected = file.read_groups(range(0, 2))
        reads: list[range] = []
        read_groups = file.read_groups

        def noting(groups: range) -> list[Example]:
            reads.append(groups)
            return read_groups(groups)

        monkeypatch.setattr(file, "read_groups", noting)
        first = score_shard_reusing(store, task, key, file.shard(range(0, 2)), rows)
        assert reads == [range(0, 2)], "a new shard is scored from its examples, read once"
        assert list(first["exact-match"]) == [100.0] * 20

        again = score_shard_reusing(store, task, key, file.shard(range(0, 2)), rows)
        assert reads == [range(0, 2)], "reused scores need no examples"
        pd.testing.assert_frame_equal(first, again)

        shard = file.shard(range(0, 2))  # scoring threads of two shards may read at once
        with ThreadPoolExecutor(4) as pool:
            seen = list(pool.map(lambda _: list(shard), range(4)))
        assert seen == [expected] * 4 and len(shard) == 20 and shard[3] == expected[3]
        assert reads == [range(0, 2), range(0, 2)]
