"""The store survives what disks do: files cut short or garbled, and a disk that fills up."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from benchgate.spec.example import Example
from benchgate.store import Store
from tests.conftest import REPO_ROOT

ROW = {
    "cache_key": "k",
    "benchmark_id": "bmk-1",
    "model_id": "m",
    "example_id": "q-1",
    "sample_index": 0,
    "output": "Paris",
    "error": None,
    "reusable": True,
    "created_at": "2026-01-01T00:00:00+00:00",
}


def write_part(store: Store, example_id: str) -> str:
    writer = store.generation_writer("m", "qa")
    writer.append({**ROW, "cache_key": f"k-{example_id}", "example_id": example_id})
    writer.close()
    return writer.part_path


def truncate(path: str) -> None:
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) // 2])


def test_a_truncated_generation_part_is_quarantined_named_and_the_rest_still_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(str(tmp_path))
    write_part(store, "q-1")
    broken = write_part(store, "q-2")
    truncate(broken)
    with caplog.at_level(logging.WARNING, logger="benchgate.store"):
        rows = store.read_generations("m", "qa")
    assert [row["example_id"] for row in rows] == ["q-1"]
    assert broken in caplog.text and "quarantine" in caplog.text
    assert not Path(broken).exists()
    assert len(list((tmp_path / "quarantine").rglob("*.parquet.*"))) == 1
    assert set(store.reusable_generations("m", "qa")) == {"k-q-1"}, "the lost answer is asked again"


def test_a_part_of_an_older_layout_reads_as_the_dataset_reader_reads_it_without_importing_it(
    tmp_path: Path,
) -> None:
    """Missing columns are nulls and narrower types are cast, as `pq.read_table(schema=...)` gives, in
    a fresh interpreter that never imports pyarrow.dataset (a cached rerun's first shard waited on it)."""
    script = """
import sys
import pyarrow as pa, pyarrow.parquet as pq
from benchgate.store import Store
from benchgate.store.store import GENERATION_SCHEMA
root = sys.argv[1]
older = pa.table({"cache_key": ["a", "b"], "output": ["x", None], "latency_ms": pa.array([1, 2], pa.int32())})
pq.write_table(older, root + "/generations/model=m/task=qa/part-old.parquet")
store = Store(root)
rows = store.read_generations("m", "qa")
chosen = store.read_generations("m", "qa", columns=["output", "latency_ms"])
assert "pyarrow.dataset" not in sys.modules
expected = pq.read_table(root + "/generations/model=m/task=qa/part-old.parquet", schema=GENERATION_SCHEMA)
assert rows == expected.to_pylist(), rows
assert chosen == [{"output": "x", "latency_ms": 1.0}, {"output": None, "latency_ms": 2.0}], chosen
"""
    (tmp_path / "generations" / "model=m" / "task=qa").mkdir(parents=True)
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=REPO_ROOT, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()


def test_generation_rows_become_the_table_pyarrow_would_convert_without_importing_pandas() -> None:
    """Each column type with and without nulls, text beyond ASCII, one row and none: the same table as
    `Table.from_pylist`, the reference conversion, built without importing pandas (pyarrow's
    conversion of Python objects does, and held the generation process's loop at its first part)."""
    script = r"""
import sys
import pyarrow as pa
from benchgate.store.store import GENERATION_SCHEMA, generation_table
def row(i):
    return {
        "cache_key": f"k{i}", "benchmark_id": "b", "model_id": "m", "example_id": f"e{i}",
        "sample_index": i % 3, "prompt": "q \u00fc\u2028\n" * (i % 4),
        "output": None if i % 5 == 0 else f"a \U0001f600 {i}",
        "error": None if i % 7 else "boom", "reusable": None if i % 6 == 0 else i % 2 == 0,
        "latency_ms": None if i % 4 == 0 else i / 3, "input_tokens": None if i % 3 == 0 else 2**40 + i,
        "output_tokens": i, "attempts": 1,
    }
rows = [row(i) for i in range(50)]
tables = [generation_table(rows), generation_table(rows[1:2]), generation_table([])]
assert "pandas" not in sys.modules and "pyarrow.compute" not in sys.modules
for table, chosen in zip(tables, [rows, rows[1:2], []]):
    table.validate(full=True)
    expected = pa.Table.from_pylist(chosen, schema=GENERATION_SCHEMA)
    assert table.equals(expected), (table.slice(0, 3).to_pylist(), expected.slice(0, 3).to_pylist())
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()


def test_garbage_examples_are_quarantined_and_materialised_again(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    examples = [Example(f"q-{i}", [{"role": "user", "content": str(i)}], ["a"]) for i in range(5)]
    store.write_examples("qa-digest", examples, shard_size=2)
    assert store.examples_readable("qa-digest")
    Path(store.examples_path("qa-digest")).write_bytes(b"not parquet at all")
    assert not store.examples_readable("qa-digest")
    assert not Path(store.examples_path("qa-digest")).exists()
    store.write_examples("qa-digest", examples, shard_size=2)
    assert store.example_counts("qa-digest") == (5, 3)


def test_unreadable_scores_read_as_missing(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    store.write_scores("bmk-1", "m", "qa", pd.DataFrame({"example_id": ["q-1"], "f1-score": [100.0]}))
    truncate(store.scores_path("bmk-1", "m", "qa"))
    assert store.read_scores("bmk-1", "m", "qa") is None


FILL_THE_DISK = """
import sys
from pathlib import Path
from benchgate.errors import StoreError
from benchgate.store import Store

store = Store(sys.argv[1])
store.write_bytes(store.path("small.json"), b"{}")
try:
    store.write_bytes(store.path("reports", "big.bin"), b"x" * 200_000)
except StoreError as error:
    print("StoreError:", error)
names = sorted(p.name for p in Path(sys.argv[1]).rglob("*") if p.is_file())
print("files:", names)
"""


def on_a_tiny_disk(tmp_path: Path, script: str) -> str:
    """The script's output, run with a real 64 KiB tmpfs as its argument, mounted in a private mount
    namespace (unprivileged user namespace)."""
    unshare = shutil.which("unshare")
    assert unshare, "util-linux unshare is part of every Debian/Ubuntu base system"
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    path = tmp_path / "fill.py"
    path.write_text(script)
    shell = f"mount -t tmpfs -o size=64k tmpfs {mount_point} && exec {sys.executable} {path} {mount_point}"
    result = subprocess.run(
        [unshare, "--user", "--map-root-user", "--mount", "sh", "-c", shell],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_full_disk_is_a_store_error_naming_the_file_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    output = on_a_tiny_disk(tmp_path, FILL_THE_DISK)
    assert "StoreError: cannot write" in output and "big.bin" in output
    assert "No space left on device" in output
    assert "files: ['small.json']" in output


async def test_answers_of_one_event_loop_turn_are_journaled_together_as_it_ends(tmp_path: Path) -> None:
    """Read back before the writer closes: what a run killed at that moment would leave."""
    store = Store(str(tmp_path))
    writer = store.generation_writer("m", "qa")
    rows = [{**ROW, "cache_key": f"k-{i}", "example_id": f"q-{i}"} for i in range(3)]
    for row in rows[:2]:
        writer.append(row)
    assert Path(writer.journal_path).read_bytes() == b"", "the turn has not ended"
    await asyncio.sleep(0)
    writer.append(rows[2])
    await asyncio.sleep(0)
    assert [r["example_id"] for r in store.read_generations("m", "qa")] == ["q-0", "q-1", "q-2"]
    writer.close()
    assert not Path(writer.journal_path).exists()
    assert [r["example_id"] for r in store.read_generations("m", "qa")] == ["q-0", "q-1", "q-2"]


FILL_THE_JOURNAL = """
import asyncio, sys
from benchgate.errors import StoreError
from benchgate.store import Store

async def main():
    writer = Store(sys.argv[1]).generation_writer("m", "qa")
    row = {"cache_key": "k", "example_id": "q", "sample_index": 0, "output": "x" * 10_000, "error": None}
    try:
        for i in range(100):
            writer.append({**row, "cache_key": f"k-{i}"})
            await asyncio.sleep(0)
    except StoreError as error:
        print(f"StoreError after {i} rows:", error)

asyncio.run(main())
"""


def test_a_full_disk_under_the_journal_fails_the_next_answer_with_a_store_error(tmp_path: Path) -> None:
    output = on_a_tiny_disk(tmp_path, FILL_THE_JOURNAL)
    assert "StoreError after" in output and ".journal" in output, output
    assert "No space left on device" in output
    after = int(output.split("StoreError after ")[1].split(" ")[0])
    assert 5 <= after <= 9, "64 KiB hold six 10 KB answers: the seventh is not written, the eighth raises"
