"""Metric history: a Parquet file per report, the trend, drops flagged by the metric's direction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchgate.report.history import (
    append_report,
    drops,
    read_history,
    render_trend_markdown,
    trend,
    trend_table,
)
from benchgate.spec.report import Report
from benchgate.store import Store


def report(
    benchmark_id: str, completed_at: str, f1: float, rouge: float, status: str = "completed"
) -> Report:
    def detail(metric: str, value: float, scale: str) -> dict[str, Any]:
        stats = {"value": value, "ci_low": value - 1, "ci_high": value + 1}
        return {
            "n": 10,
            "metrics": {metric: stats},
            "scales": {metric: scale},
            "higher_is_better": {metric: True},
        }

    return Report.model_validate(
        {
            "benchmarkId": benchmark_id,
            "name": "Nightly",
            "status": status,
            "completedAt": completed_at,
            "report": {
                "question-answering": {"dataset": "squad-v2", "results": [{"model": "m", "f1-score": f1}]},
                "text-summarization": {
                    "dataset": "cnn-dailymail",
                    "results": [{"model": "m", "rouge-l": rouge}],
                },
            },
            "details": {
                "question-answering": {
                    "m": detail("f1-score", f1, "percent"),
                    "broken": {"n": 0, "failure": "boom"},
                },
                "text-summarization": {"m": detail("rouge-l", rouge, "fraction")},
            },
        }
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(str(tmp_path / "store"))


def test_completed_reports_are_recorded_once_each_and_read_back_in_time_order(store: Store) -> None:
    assert append_report(store, report("bmk-000000000002", "2024-01-02T02:00:00Z", 80.0, 0.40)) == 2
    assert append_report(store, report("bmk-000000000001", "2024-01-01T02:00:00Z", 81.0, 0.41)) == 2
    assert (
        append_report(store, report("bmk-000000000001", "2024-01-01T02:00:00Z", 81.0, 0.41)) == 2
    )  # replaces
    assert append_report(store, report("bmk-000000000003", "2024-01-03T02:00:00Z", 1.0, 0.1, "failed")) == 0
    history = read_history(store)
    assert list(history["benchmark_id"].unique()) == ["bmk-000000000001", "bmk-000000000002"]
    assert len(history) == 4
    assert set(history["model"]) == {"m"}  # the failed pair contributes nothing
    only_f1 = read_history(store, task="question-answering", metric="f1-score")
    assert only_f1["value"].tolist() == [81.0, 80.0]


def test_an_unreadable_history_file_is_quarantined_and_the_others_still_read(store: Store) -> None:
    append_report(store, report("bmk-000000000001", "2024-01-01T02:00:00Z", 81.0, 0.41))
    append_report(store, report("bmk-000000000002", "2024-01-02T02:00:00Z", 80.0, 0.40))
    garbage = Path(store.path("history", "bmk-000000000002.parquet"))
    garbage.write_bytes(b"not parquet")
    history = read_history(store)
    assert history["benchmark_id"].tolist() == ["bmk-000000000001"] * 2
    assert not garbage.exists()
    assert [p.name.split(".parquet.")[0] for p in Path(store.path("quarantine")).rglob("*.parquet.*")] == [
        "bmk-000000000002"
    ]


def test_empty_store_has_an_empty_history(store: Store) -> None:
    assert read_history(store).empty
    assert trend(read_history(store)) == []
    assert "No earlier runs" in render_trend_markdown([])


def test_trend_keeps_the_last_runs_with_changes_and_flags_drops_beyond_the_tolerance(store: Store) -> None:
    values = [(80.0, 0.400), (80.5, 0.395), (78.0, 0.396), (78.2, 0.370)]
    for day, (f1, rouge) in enumerate(values, start=1):
        append_report(store, report(f"bmk-00000000000{day}", f"2024-01-0{day}T02:00:00Z", f1, rouge))
    rows = trend(read_history(store), last=3)
    f1_rows = [r for r in rows if r.metric == "f1-score"]
    assert [r.value for r in f1_rows] == [80.5, 78.0, 78.2]
    assert [round(r.change, 3) for r in f1_rows] == [0.5, -2.5, 0.2]  # the first shown still has its change
    assert [r.dropped for r in f1_rows] == [False, True, False]  # -2.5 points > 1 point tolerance
    rouge_rows = [r for r in rows if r.metric == "rouge-l"]
    assert [r.dropped for r in rouge_rows] == [False, False, True]  # -0.026 > 0.01, -0.005 is noise
    assert [(r.metric, r.benchmark_id) for r in drops(rows, "bmk-000000000004")] == [
        ("rouge-l", "bmk-000000000004")
    ]
    markdown = render_trend_markdown(rows, "bmk-000000000004")
    assert "1 metric(s) dropped" in markdown and "m · text-summarization · rouge-l (-0.026)" in markdown
    assert "**-2.5 ▼**" in markdown
    table = trend_table(rows)
    assert table[1]["drop"] == "DROP" and table[0]["drop"] == ""


def test_a_lower_is_better_metric_drops_when_it_rises(store: Store) -> None:
    for day, value in enumerate((10.0, 14.0), start=1):
        data = report(f"bmk-00000000000{day}", f"2024-01-0{day}T02:00:00Z", value, 0.4)
        data.pair_details("question-answering", "m").higher_is_better = {"f1-score": False}
        append_report(store, data)
    rows = [r for r in trend(read_history(store)) if r.metric == "f1-score"]
    assert rows[-1].dropped and rows[-1].change == 4.0
