"""`benchgate export`'s table and its formats registry: one row per item, model and sample; errored items
keep their error; every format reads back the same. The CLI on real runs: tests/e2e/test_drilldown.py."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pandas as pd
import pytest

from benchgate.errors import RequestError, StoreError
from benchgate.report import export
from benchgate.report.export import EXPORTS, ExportFormat, export_format, item_rows
from benchgate.store import Store
from tests.report.stored_runs import TASK, generation, stored_report, write_examples, write_generations

READERS = {
    "jsonl": lambda data: pd.read_json(io.BytesIO(data), lines=True, dtype={"example_id": str}),
    "csv": lambda data: pd.read_csv(io.BytesIO(data), dtype={"example_id": str}),
    "parquet": lambda data: pd.read_parquet(io.BytesIO(data)),
}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(str(tmp_path / "store"))
    write_examples(store, "abc", {"x": "ten", "y": "eleven", "z": "twelve"})
    write_generations(
        store,
        "m",
        [
            generation("bmk-a", "m", "x", "ten"),
            generation("bmk-a", "m", "y", "a", sample_index=0),
            generation("bmk-a", "m", "y", 'b, "quoted"\nline', sample_index=1, input_tokens=None),
            generation("bmk-a", "m", "z", None, error="HTTP 503", input_tokens=None, output_tokens=None),
        ],
    )
    write_generations(store, "n", [generation("bmk-a", "n", i, "n says") for i in ("x", "y", "z")])
    return store


def test_one_row_per_item_model_and_sample_with_scores_and_costs(store: Store) -> None:
    report = stored_report(
        store, "bmk-a", {"m": {"x": 100.0, "y": 50.0}, "n": {"x": 0.0, "y": 0.0, "z": 0.0}}
    )
    frame = item_rows(store, report)
    assert list(frame.columns) == [
        "task", "model", "example_id", "sample_index", "prompt", "reference", "output", "score_f1-score",
        "latency_ms", "input_tokens", "output_tokens", "error",
    ]  # fmt: skip
    keys = list(zip(frame["model"], frame["example_id"], frame["sample_index"], strict=True))
    assert keys == [
        ("m", "x", 0),
        ("m", "y", 0),
        ("m", "y", 1),
        ("m", "z", 0),
        ("n", "x", 0),
        ("n", "y", 0),
        ("n", "z", 0),
    ]
    errored = frame.iloc[3].to_dict()
    assert (
        errored["error"] == "HTTP 503"
        and math.isnan(errored["score_f1-score"])
        and pd.isna(errored["output"])
    )
    first = frame.iloc[0].to_dict()
    assert (first["prompt"], first["reference"], first["output"], first["score_f1-score"]) == (
        "Question x?", "ten", "ten", 100.0,
    )  # fmt: skip
    assert (first["task"], first["latency_ms"], first["input_tokens"], first["output_tokens"]) == (
        TASK,
        12.5,
        7,
        2,
    )


@pytest.mark.parametrize("name", sorted(EXPORTS))
def test_every_format_reads_back_the_same_table(store: Store, name: str) -> None:
    report = stored_report(
        store, "bmk-a", {"m": {"x": 100.0, "y": 50.0}, "n": {"x": 0.0, "y": 0.0, "z": 0.0}}
    )
    frame = item_rows(store, report)
    back = READERS[name](export_format(name).render(frame))
    assert list(back.columns) == list(frame.columns) and len(back) == len(frame)
    for column in frame.columns:
        expected, actual = frame[column].tolist(), back[column].tolist()
        assert [None if pd.isna(v) else v for v in actual] == [None if pd.isna(v) else v for v in expected], (
            column
        )


def test_a_format_is_one_entry(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    tsv = ExportFormat("tsv", lambda frame: frame.to_csv(index=False, sep="\t").encode())
    monkeypatch.setitem(export.EXPORTS, "tsv", tsv)
    report = stored_report(store, "bmk-a", {"n": {"x": 0.0, "y": 0.0, "z": 0.0}})
    assert (
        export_format("tsv").render(item_rows(store, report)).decode().startswith("task\tmodel\texample_id")
    )


def test_refusals(store: Store) -> None:
    with pytest.raises(RequestError, match="unknown format 'xml' \\(formats: jsonl, csv, parquet\\)"):
        export_format("xml")
    report = stored_report(store, "bmk-a", {"m": {"x": 100.0}, "n": {"x": 0.0}})
    with pytest.raises(RequestError, match="unknown evaluation task 'nope'"):
        item_rows(store, report, "nope")
    Path(store.scores_path("bmk-a", "n", TASK)).unlink()
    with pytest.raises(StoreError, match="no per-item scores for n on arith"):
        item_rows(store, report)
