"""The store on S3: moto's standalone server on 127.0.0.1, real `benchgate run`s writing to it.

Two runs at once, a run SIGKILLed mid-shard then rerun, and the API's and history's files: nothing is
lost beyond one journal batch per shard, nothing is counted twice, and no listing covers the bucket.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchgate.interfaces.api_runs import Submissions
from benchgate.report.history import read_history
from benchgate.store import Store
from benchgate.store.journal import ChunkJournal
from benchgate.store.store import GENERATION_SCHEMA
from tests.conftest import REPO_ROOT, cli_env, run_cli
from tests.support.chat_servers import ChatServer
from tests.support.prefect_server import free_port
from tests.support.processes import run_and_kill_when, stop_group

BUCKET = "bench"
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class Moto:
    """moto's S3 server as a subprocess; its access log tells which listings the store made."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(self.url, timeout=1)
                break
            except httpx.TransportError:
                assert self.process.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        httpx.put(f"{self.url}/{BUCKET}").raise_for_status()

    def listings(self) -> list[dict[str, str]]:
        """The query of every ListObjectsV2 request so far."""
        found = re.findall(rf'"GET /{BUCKET}\?(list-type=2[^ ]*) HTTP', self.log.read_text())
        return [dict(pair.partition("=")[::2] for pair in query.split("&")) for query in found]


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    server = Moto(tmp_path_factory.mktemp("moto") / "access.log")
    saved = {key: os.environ.get(key) for key in [*S3_ENV, "AWS_ENDPOINT_URL_S3"]}
    os.environ.update(S3_ENV, AWS_ENDPOINT_URL_S3=server.url)  # botocore takes the endpoint from here
    try:
        yield server
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        stop_group(server.process)


def s3_env(prefect_server: Any, moto: Moto, prefix: str, **extra: str) -> dict[str, str]:
    env = cli_env(prefect_server, Path("unused"), **S3_ENV, AWS_ENDPOINT_URL_S3=moto.url, **extra)
    return {**env, "BENCHGATE_STORE": f"s3://{BUCKET}/{prefix}"}


def echo_request(
    directory: Path, server_url: str, tasks: dict[str, int], concurrency: int = 4, **options: Any
) -> Path:
    """A custom task per name with that many items; the echo server answers every one exactly."""
    specs = []
    for task, count in tasks.items():
        data = directory / f"{task}.jsonl"
        data.write_text(
            "".join(json.dumps({"id": f"{task}-{i}", "q": f"{task} says {i}"}) + "\n" for i in range(count))
        )
        specs.append(
            {
                "task": task,
                "dataset": str(data),
                "prompt": "{{ q }}",
                "target": "echo: {{ q }}",
                "metrics": ["exact-match"],
                **options,
            }
        )
    models = [
        {
            "id": "echo",
            "provider": "openai-compatible",
            "base_url": server_url + "/v1",
            "concurrency": concurrency,
        }
    ]
    path = directory / f"request-{'-'.join(tasks)}.json"
    path.write_text(json.dumps({"name": "s3", "models": models, "tasks": specs}))
    return path


def detail(report: dict[str, Any], task: str) -> dict[str, Any]:
    return report["details"][task]["echo"]


def generation_objects(store: Store, task: str, model: str = "echo") -> list[str]:
    return [p.rsplit("/", 1)[-1] for p in store.fs.ls(store.generations_dir(model, task), detail=False)]


@pytest.mark.slow
def test_two_runs_at_once_then_a_rerun_that_asks_nothing(
    tmp_path: Path, prefect_server: Any, moto: Moto
) -> None:
    tasks = {"alpha": 40, "beta": 30}
    env = s3_env(prefect_server, moto, "shared")
    with ChatServer(latency=0.02) as server:
        runs = [
            subprocess.Popen(
                [sys.executable, "-m", "benchgate", "run", str(request), "--out", str(tmp_path / task)],
                env=env,
                cwd=REPO_ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for task, count in tasks.items()
            for request in [echo_request(tmp_path, server.url, {task: count})]
        ]
        outputs = [run.communicate(timeout=180)[0] for run in runs]
        assert [run.returncode for run in runs] == [0, 0], outputs
        assert server.count == sum(tasks.values())

        both = echo_request(tmp_path, server.url, tasks)
        rerun = run_cli(["run", str(both), "--out", str(tmp_path / "rerun")], env)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        assert server.count == sum(tasks.values()), "a rerun on S3 asks the model nothing"

    store = Store(env["BENCHGATE_STORE"])
    again = json.loads((tmp_path / "rerun" / "report.json").read_text())
    for task, count in tasks.items():
        first = json.loads((tmp_path / task / "report.json").read_text())
        assert again["report"][task] == first["report"][task]
        assert again["report"][task]["results"] == [{"model": "echo", "exact-match": 100.0}]
        assert (detail(again, task)["n"], detail(again, task)["reused"]) == (count, count)
        # report, scores and history of each run are on S3, and the answers are Parquet parts only
        assert store.read_report(first["benchmarkId"])["status"] == "completed"
        assert len(store.read_scores(first["benchmarkId"], "echo", task)) == count
        assert all(name.endswith(".parquet") for name in generation_objects(store, task))
        assert len(store.read_generations("echo", task)) == count
    ids = {json.loads((tmp_path / task / "report.json").read_text())["benchmarkId"] for task in tasks}
    assert set(read_history(store)["benchmark_id"]) == {*ids, again["benchmarkId"]}
    root = "shared/"
    for listing in moto.listings():
        assert listing.get("delimiter") == "/", f"a recursive listing: {listing}"
        assert listing.get("prefix", "") not in ("", root), f"the whole store listed: {listing}"


@pytest.mark.slow
def test_a_run_killed_mid_shard_loses_at_most_a_batch_and_counts_every_item_once(
    tmp_path: Path, prefect_server: Any, moto: Moto
) -> None:
    items, shards, concurrency, batch = 80, 4, 4, 4
    env = s3_env(
        prefect_server,
        moto,
        "killed",
        BENCHGATE_JOURNAL_BATCH_ROWS=str(batch),
        BENCHGATE_JOURNAL_BATCH_SECONDS="0.5",
        BENCHGATE_JOURNAL_ORPHAN_SECONDS="2",
    )
    store = Store(env["BENCHGATE_STORE"])
    with ChatServer(latency=0.1) as server:
        request = echo_request(tmp_path, server.url, {"slow": items}, concurrency, shard_size=items // shards)
        run_and_kill_when(request, env, lambda: server.count >= items // 2)
        killed_at, in_flight = server.count, server.in_flight
        leftovers = generation_objects(store, "slow")
        assert any(".journal-" in name for name in leftovers), f"answers were journaled: {leftovers}"
        journaled = len(store.read_generations("echo", "slow"))
        lost = killed_at - in_flight - journaled
        assert 0 <= lost <= batch * shards, "at most one batch per shard in progress is lost"
        time.sleep(2)  # the killed writer's chunks are now older than BENCHGATE_JOURNAL_ORPHAN_SECONDS

        resumed = run_cli(["run", str(request), "--out", str(tmp_path / "out")], env)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert server.count - killed_at == items - journaled, "only what the journal lacked is asked again"
        assert server.count <= items + in_flight + batch * shards

    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["report"]["slow"]["results"] == [{"model": "echo", "exact-match": 100.0}]
    assert (detail(report, "slow")["n_items"], detail(report, "slow")["n"]) == (items, items)
    assert detail(report, "slow")["reused"] == journaled
    names = generation_objects(store, "slow")
    assert names and all(name.endswith(".parquet") for name in names), f"chunks folded in: {names}"
    rows = [
        row
        for name in names
        for row in pq.read_table(
            store.fs.open(store.generations_dir("echo", "slow") + "/" + name, "rb"), schema=GENERATION_SCHEMA
        ).to_pylist()
    ]
    assert len({row["cache_key"] for row in rows}) == items
    assert len(store.read_generations("echo", "slow")) == len(rows)


def test_api_submissions_history_and_a_batched_journal_on_s3(moto: Moto, monkeypatch: Any) -> None:
    store = Store(f"s3://{BUCKET}/unit")
    submissions = Submissions(store)
    for number in range(3):
        submissions.record(f"bmk-{number:012x}", f"run {number}", {"mode": "process"})
    submissions.mark_queued("bmk-000000000001", "run 1")
    assert [s["benchmarkId"] for s in submissions.recent(2)] == ["bmk-000000000002", "bmk-000000000001"]
    assert store.read_report("bmk-000000000001")["status"] == "queued"
    assert read_history(store).empty

    monkeypatch.setenv("BENCHGATE_JOURNAL_BATCH_ROWS", "4")
    monkeypatch.setenv("BENCHGATE_JOURNAL_BATCH_SECONDS", "0.3")
    writer = store.generation_writer("m", "t")
    row = {name: None for name in GENERATION_SCHEMA.names}
    for number in range(6):
        writer.append({**row, "cache_key": f"k{number}", "created_at": f"2026-01-01T00:00:0{number}"})
    assert len(store.read_generations("m", "t")) == 4, "a full batch is one chunk at once"
    time.sleep(0.6)
    assert len(store.read_generations("m", "t")) == 6, "the rest within the batch's seconds"
    # a kill between the part's write and the chunks' removal: both are read, each row counted once
    store._write_table(writer.part_path, pa.Table.from_pylist(writer.rows, GENERATION_SCHEMA))
    assert len(store.read_generations("m", "t")) == 6
    writer.close()
    assert generation_objects(store, "t", "m") == [writer.part_path.rsplit("/", 1)[-1]]

    # Chunks left by a writer of another process killed between its part and their removal: the next
    # writer to close removes them without folding them into a second part. A writer of this process
    # that was only silent that long (a shard generated ahead waits for its task) is not folded at all.
    monkeypatch.setenv("BENCHGATE_JOURNAL_ORPHAN_SECONDS", "0.5")
    directory = store.generations_dir("m", "t")
    killed_stem = f"{directory}/part-{uuid.uuid4().hex}"
    killed = ChunkJournal(store.fs, killed_stem, 4, 60.0)
    killed_rows = [{**row, "cache_key": f"killed{n}", "created_at": "2026-01-02T00:00:00"} for n in range(8)]
    for killed_row in killed_rows:
        killed.append(killed_row)
    store._write_table(f"{killed_stem}.parquet", pa.Table.from_pylist(killed_rows, GENERATION_SCHEMA))
    alive = store.generation_writer("m", "t")
    for number in range(4):
        alive.append({**row, "cache_key": f"alive{number}", "created_at": "2026-01-03T00:00:00"})
    assert sum(".journal-" in name for name in generation_objects(store, "t", "m")) == 3
    time.sleep(1.6)  # older than the orphan threshold, at S3's one-second LastModified
    later = store.generation_writer("m", "t")
    later.append({**row, "cache_key": "later", "created_at": "2026-01-04T00:00:00"})
    later.close()
    chunks = [name for name in generation_objects(store, "t", "m") if ".journal-" in name]
    assert chunks == [f"{alive.stem.rsplit('/', 1)[-1]}.journal-000000.jsonl"], chunks
    alive.close()
    names = generation_objects(store, "t", "m")
    stored = [
        key
        for name in names
        for key in pq.read_table(store.fs.open(f"{directory}/{name}", "rb"), schema=GENERATION_SCHEMA)
        .column("cache_key")
        .to_pylist()
    ]
    expected = [f"k{n}" for n in range(6)] + [f"killed{n}" for n in range(8)] + ["later"]
    assert sorted(stored) == sorted(expected + [f"alive{n}" for n in range(4)]), "every row stored once"
