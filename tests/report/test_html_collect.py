"""report.html's items read the generations column-wise when the store holds Parquet parts only, and
through `Store.read_generations` otherwise: both must pick the same rows (tests/report/test_html.py runs
the whole page)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from benchgate import jsonio
from benchgate.report.html import collect
from benchgate.report.html.collect import items_collected_ahead, unit_key, unit_scored
from benchgate.store import Store
from benchgate.store.store import GENERATION_SCHEMA
from tests.report.stored_runs import TASK, generation, stored_report, write_examples

RUN = "bmk-run"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(str(tmp_path / "store"))
    write_examples(store, "0" * 16, {"i1": "2", "i2": "4", "i3": "6"})
    return store


def write_part(store: Store, name: str, rows: list[dict[str, Any]]) -> None:
    path = f"{store.generations_dir('m', TASK)}/{name}.parquet"
    store._write_table(path, pa.Table.from_pylist(rows, GENERATION_SCHEMA))


def shown(store: Store) -> list[tuple[str, dict[str, Any], str, str | None]]:
    report = stored_report(store, RUN, {"m": {"i1": 1.0, "i2": 0.0}})
    items, _ = collect(store, json.loads(report.to_json()))
    return [(i["id"], i["scores"], i["output"], i["error"]) for i in items]


def test_a_leftover_journal_is_read_as_the_parts_are(store: Store) -> None:
    rows = [
        generation(RUN, "m", "i1", "2"),
        generation("bmk-old", "m", "i2", "4", created_at="2024-05-01T09:00:00+00:00"),
        generation(RUN, "m", "i2", "5"),
        generation(RUN, "m", "i3", None, error="timeout"),
    ]
    expected = [
        ("i1", {"f1-score": 1.0}, "2", None),
        ("i2", {"f1-score": 0.0}, "5", None),  # this run's answer, not the older one
        ("i3", {}, "", "timeout"),  # failed in this run: unscored, shown after the scored items
    ]
    write_part(store, "part-a", rows[:2])
    journal = f"{store.generations_dir('m', TASK)}/part-b.journal"
    store.write_bytes(journal, b"".join(jsonio.dumps(row) + b"\n" for row in rows[2:]))
    assert shown(store) == expected
    store.fs.rm(journal)
    write_part(store, "part-b", rows[2:])
    assert shown(store) == expected


def test_a_row_stored_twice_counts_once_the_first_copy_read(store: Store) -> None:
    """Folded chunks repeat a row (same cache key and time): the first file's copy is the row, even
    where the second copy alone would have won (this run's, where the first is another's)."""
    first = generation("bmk-old", "m", "i1", "first copy")
    write_part(store, "part-a", [first, generation(RUN, "m", "i2", "4")])
    write_part(store, "part-b", [{**first, "benchmark_id": RUN, "output": "second copy"}])
    assert [output for _, _, output, _ in shown(store)] == ["first copy", "4"]


def test_only_the_last_unit_scored_is_collected_ahead_and_only_its_own_rows_are_used(store: Store) -> None:
    write_part(store, "part-a", [generation(RUN, "m", "i1", "2"), generation(RUN, "m", "i2", "5")])
    report = json.loads(stored_report(store, RUN, {"m": {"i1": 1.0, "i2": 0.0}}).to_json())
    fresh, _ = collect(store, report)
    assert [i["output"] for i in fresh] == ["2", "5"]
    key, other = (unit_key(store, RUN, TASK, "m", "r1", metrics) for metrics in (["f1-score"], ["em"]))
    with items_collected_ahead(2) as ahead:
        unit_scored(store, RUN, TASK, "m", "r1", ["f1-score"])
        assert ahead.take(key) is None, "another unit is still running: nothing is held for it"
    with items_collected_ahead(2) as ahead:
        unit_scored(store, RUN, TASK, "judged", "r1", None)
        unit_scored(store, RUN, TASK, "m", "r1", ["f1-score"])
        assert ahead.take(key) == fresh
        assert ahead.take(key) is None, "a unit's rows are taken once"
    with items_collected_ahead(1) as ahead:
        unit_scored(store, RUN, TASK, "m", "r1", ["f1-score"])
        assert collect(store, report)[0] == fresh
        assert ahead.take(key) is None, "collect took the unit's rows"
    with items_collected_ahead(1) as ahead:
        unit_scored(store, RUN, TASK, "m", "r1", ["em"])  # metrics the report does not have
        assert collect(store, report)[0] == fresh
        assert ahead.take(other) is not None, "rows of another unit stay unused"
    with items_collected_ahead(1) as ahead:
        unit_scored(store, RUN, TASK, "m", "r1", None)  # a unit with judges
        assert ahead.take(key) is None
