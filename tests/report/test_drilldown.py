"""Drill-downs: pairing and movement, which stored answers belong to a run, excerpts and their markdown,
which verdicts get one, and `diff_runs`' refusals. End to end through the CLI: tests/e2e/test_drilldown.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchgate.errors import RequestError, StoreError
from benchgate.report.drilldown import (
    TOP_ITEMS,
    attach_drilldowns,
    diff_runs,
    drilldown,
    drilldown_rows,
    excerpt,
)
from benchgate.report.items import load_items, load_report
from benchgate.report.markdown import render_drilldown, render_gate_markdown
from benchgate.spec.report import Drilldown, GateDecision, MovedItem, Report, RuleVerdict
from benchgate.store import Store
from tests.report.stored_runs import TASK, generation, stored_report, write_examples, write_generations


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(str(tmp_path / "store"))


def test_items_are_counted_and_ordered_by_how_far_they_moved(store: Store) -> None:
    base = {f"i{k:02d}": 50.0 for k in range(30)}
    cand = dict(base)
    drops = {f"i{k:02d}": -float(k + 1) for k in range(12)}  # i11 dropped most
    cand.update({i: 50.0 + d for i, d in drops.items()})
    cand.update({"i20": 60.0, "i21": 90.0, "i22": 50.0 + 1e-12})  # two gains, and float noise
    cand["i29"] = None  # unscored (an errored item): not paired
    report = stored_report(store, "bmk-a", {"cand": cand, "base": base})
    items, reference = load_items(store, report, "cand", TASK), load_items(store, report, "base", TASK)

    d = drilldown(items, reference, "f1-score", higher_is_better=True)
    assert (d.improved, d.worse, d.unchanged, d.paired) == (2, 12, 15, 29)
    assert [m.example_id for m in d.most_worse] == [f"i{k:02d}" for k in range(11, 1, -1)]  # top 10
    assert len(d.most_worse) == TOP_ITEMS
    assert [(m.example_id, m.change) for m in d.most_improved] == [("i21", 40.0), ("i20", 10.0)]
    assert (d.most_worse[0].score, d.most_worse[0].baseline_score) == (38.0, 50.0)

    # Lower is better (an error count, say): the same numbers move the other way.
    flipped = drilldown(items, reference, "f1-score", higher_is_better=False, top=3)
    assert (flipped.improved, flipped.worse) == (12, 2)
    assert [m.example_id for m in flipped.most_worse] == ["i21", "i20"]
    assert [m.example_id for m in flipped.most_improved] == ["i11", "i10", "i09"]


def test_a_run_reads_its_own_answers_then_those_it_reused_never_later_or_other_revisions(
    store: Store,
) -> None:
    report = stored_report(store, "bmk-now", {"m": {"own": 1.0, "reused": 1.0, "failed": 1.0}})
    write_generations(
        store,
        "m",
        [
            generation("bmk-old", "m", "own", "old answer", created_at="2024-04-01T00:00:00+00:00"),
            generation("bmk-now", "m", "own", "this run's answer"),
            generation("bmk-old", "m", "reused", "reused answer", created_at="2024-04-01T00:00:00+00:00"),
            generation("bmk-older", "m", "reused", "older", created_at="2024-03-01T00:00:00+00:00"),
            generation("bmk-old2", "m", "reused", None, error="503", created_at="2024-04-02T00:00:00+00:00"),
            generation("bmk-later", "m", "reused", "later run", created_at="2024-06-01T00:00:00+00:00"),
            generation("bmk-r0", "m", "reused", "other revision", dataset_revision="r0"),
            generation("bmk-now", "m", "failed", None, error="timed out"),
        ],
    )
    items = load_items(store, report, "m", TASK)
    assert items.answer("own") == "this run's answer"
    assert items.answer("reused") == "reused answer"
    assert items.answer("failed") == "error: timed out"
    assert items.prompt("own") == "Question own?"


def test_references_come_from_the_examples_file_whose_prompt_the_run_sent(store: Store) -> None:
    report = stored_report(store, "bmk-a", {"m": {"x": 1.0}})
    write_generations(store, "m", [generation("bmk-a", "m", "x", "answer")])
    write_examples(store, "aaa", {"x": "from another task definition"}, question="Other")
    write_examples(store, "bbb", {"x": "the run's reference"})
    write_examples(store, "ccc", {"x": "yet another"}, question="Third")
    assert load_items(store, report, "m", TASK).reference("x") == "the run's reference"


def test_excerpts_are_one_capped_line_without_control_characters() -> None:
    assert excerpt("a\n\n b\tc\r\n") == "a b c"
    assert excerpt("x" * 200) == "x" * 79 + "…"
    assert excerpt("red\x1b[31m alert\u202egnp.exe") == "red[31m alertgnp.exe"  # no terminal escape, no bidi


def crafted_drilldown() -> Drilldown:
    evil = "a | b\nc `code` <script>alert(1)</script> [x](javascript:y) *em* _u_ ~s~ \\| &amp;"
    item = MovedItem(
        example_id="id|1", score=0.0, baseline_score=1.0, change=-1.0, prompt=evil, reference=evil,
        output=evil, baseline_output=evil,
    )  # fmt: skip
    return Drilldown(
        task="t", metric="m", model="cand", baseline="base", worse=1, unchanged=3, most_worse=[item]
    )


def test_markdown_escapes_untrusted_text_so_the_table_holds() -> None:
    lines = render_drilldown(crafted_drilldown(), "Items that moved most: rule | x")
    assert lines[0] == "### Items that moved most: rule \\| x"
    assert lines[2] == "cand against base, m on t, 4 paired items: 1 worse, 0 improved, 3 unchanged."
    row = lines[-1]
    assert row.count("|") - row.count("\\|") == 10  # nine cells, whatever the text held
    assert "<script>" not in row and "&lt;script&gt;" in row and "&amp;amp;" in row
    for escaped in ("\\`code\\`", "\\[x\\](javascript:y)", "\\*em\\*", "\\_u\\_", "\\~s\\~", "\\\\\\|"):
        assert escaped in row
    assert "\n" not in row and row.startswith("| worse | id\\|1 | 0 | 1 | -1 | a \\| b c")


def test_nothing_moved_is_said_without_a_table() -> None:
    d = Drilldown(task="t", metric="m", model="a", baseline="b", unchanged=5)
    assert render_drilldown(d, "title") == [
        "### title",
        "",
        "a against b, m on t, 5 paired items: 0 worse, 0 improved, 5 unchanged.",
    ]


def verdict(rule: str, outcome: str, **fields: object) -> RuleVerdict:
    defaults: dict[str, object] = {"model": "cand", "task": TASK, "metric": "f1-score", "reason": "r"}
    defaults["comparison"] = "no_worse_than" if "reference" in fields else "at_least"
    return RuleVerdict.model_validate({"rule": rule, "verdict": outcome, **defaults, **fields})


def test_failed_and_warned_rules_get_a_drilldown_passing_and_point_metric_rules_do_not(store: Store) -> None:
    report = stored_report(store, "bmk-a", {"cand": {"x": 0.0, "y": 1.0}, "base": {"x": 1.0, "y": 1.0}})
    decision = GateDecision(
        decision="fail",
        rules=[
            verdict("relative fails", "fail", reference="base"),
            verdict("relative warns", "warn", reference="base"),
            verdict("relative passes", "pass", reference="base"),
            verdict("absolute fails", "fail", threshold=90.0),
            verdict("latency", "fail", metric="latency_p95_ms", reference="base"),
            verdict("unknown reference", "fail", reference="gone"),
        ],
    )
    attach_drilldowns(decision, report, "base", store)
    with_drilldown = {v.rule: v.drilldown for v in decision.rules if v.drilldown is not None}
    assert set(with_drilldown) == {"relative fails", "relative warns", "absolute fails"}
    assert all(
        (d.worse, d.unchanged, d.most_worse[0].example_id) == (1, 1, "x") for d in with_drilldown.values()
    )
    assert [r["rule"] for r in drilldown_rows(decision)] == [
        "relative fails",
        "relative warns",
        "absolute fails",
    ]

    # gate.json keys are what they were for rules without one; report.md shows one section per drill-down
    data = decision.to_dict()
    assert ["drilldown" in rule for rule in data["rules"]] == [True, True, False, True, False, False]
    assert render_gate_markdown(decision).count("### Items that moved most: ") == 3

    # No gate baseline (or the candidate itself): an absolute rule has nothing to compare with.
    again = GateDecision(decision="fail", rules=[verdict("absolute fails", "fail", threshold=90.0)])
    attach_drilldowns(again, report, None, store)
    attach_drilldowns(again, report, "cand", store)
    assert again.rules[0].drilldown is None


def test_missing_per_item_scores_leave_the_verdict_without_a_drilldown(store: Store) -> None:
    report = stored_report(store, "bmk-a", {"cand": {"x": 0.0}, "base": {"x": 1.0}})
    Path(store.scores_path("bmk-a", "base", TASK)).unlink()
    decision = GateDecision(decision="fail", rules=[verdict("r", "fail", reference="base")])
    attach_drilldowns(decision, report, None, store)
    assert decision.rules[0].drilldown is None
    with pytest.raises(StoreError, match="no per-item scores for base on arith"):
        load_items(store, report, "base", TASK)


def test_a_report_with_drilldowns_round_trips_and_one_without_keeps_its_bytes() -> None:
    report = Report(benchmark_id="bmk-0", name="n", status="completed")
    plain = report.model_copy(update={"gate": GateDecision(decision="fail", rules=[verdict("r", "fail")])})
    assert "drilldown" not in plain.to_json()
    drilled = verdict("r", "fail", drilldown=crafted_drilldown())
    text = report.model_copy(update={"gate": GateDecision(decision="fail", rules=[drilled])}).to_json()
    assert Report.model_validate_json(text).to_json() == text


def test_diff_between_two_runs_and_its_refusals(store: Store, tmp_path: Path) -> None:
    a = stored_report(store, "bmk-a", {"m": {"x": 1.0, "y": 1.0, "z": 0.0}})
    b = stored_report(store, "bmk-b", {"m": {"x": 0.0, "y": 1.0, "z": 1.0, "new": 1.0}})
    (d,) = diff_runs(a, b, store)
    assert (d.worse, d.improved, d.unchanged) == (1, 1, 1)
    assert (d.model, d.baseline) == ("m @ bmk-b", "m @ bmk-a")
    assert load_report("bmk-a", store) == a
    path = tmp_path / "report.json"
    path.write_text(b.to_json())
    assert load_report(str(path), store) == b

    with pytest.raises(RequestError, match="--task: 'nope' is not a task of both runs"):
        diff_runs(a, b, store, task="nope")
    with pytest.raises(RequestError, match="--metric: 'rouge-l' is not scored in both runs"):
        diff_runs(a, b, store, metric="rouge-l")
    disjoint = stored_report(store, "bmk-c", {"m": {"p": 1.0}})
    with pytest.raises(RequestError, match="have no scored item in common"):
        diff_runs(a, disjoint, store)
    other_model = stored_report(store, "bmk-d", {"other": {"x": 1.0}})
    with pytest.raises(RequestError, match="no model scored on a common task"):
        diff_runs(a, other_model, store)
    with pytest.raises(RequestError, match=r"no such report\.json"):
        load_report("bmk-missing", store)
    path.write_text(json.dumps({"hello": "world"}))
    with pytest.raises(RequestError, match=r"not a benchgate report\.json"):
        load_report(str(path), store)
