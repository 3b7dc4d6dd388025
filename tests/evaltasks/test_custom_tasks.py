"""Custom evaluation tasks: dataset readers, templates, few-shot, references, validation, preview.

Everything runs offline: the hub path is exercised with a `datasets` dataset saved to disk and with
the hub loader replaced by local rows; `hf:` without a network must fail validation with exit 2.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from benchgate.datasets import tabular
from benchgate.datasets.tabular import BadRow, Table
from benchgate.evaltasks import make_task, metric_infos
from benchgate.evaltasks.base import MetricInfo
from benchgate.evaltasks.custom import CustomTask, row_id
from benchgate.interfaces.cli import app
from benchgate.spec.request import TaskSpec

ROWS = [
    {"id": "q1", "question": "Capital of France?", "answer": "Paris", "n": 3},
    {"id": "q2", "question": "Capital of Italy?", "answer": "Rome", "n": 4},
    {"id": "q3", "question": "Capital of Spain?", "answer": "Madrid", "n": 5},
]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def custom(path: Path | str, **settings: Any) -> CustomTask:
    spec = {"task": "capitals", "dataset": str(path), "prompt": "{{ question }}", "target": "answer"}
    spec.setdefault("metrics", ["exact-match"])
    task = make_task(TaskSpec(**{**spec, **settings}))
    assert isinstance(task, CustomTask)
    return task


# dataset readers ---------------------------------------------------------------------------------


def test_every_file_format_reads_the_same_rows(tmp_path: Path) -> None:
    flat = [{k: str(v) for k, v in row.items()} for row in ROWS]
    write_jsonl(tmp_path / "d.jsonl", ROWS)
    (tmp_path / "d.jsonl.gz").write_bytes(gzip.compress((tmp_path / "d.jsonl").read_bytes()))
    (tmp_path / "array.json").write_text(json.dumps(ROWS))
    (tmp_path / "wrapped.json").write_text(json.dumps({"version": 2, "data": ROWS}))
    write_jsonl(tmp_path / "lines.json", ROWS)
    header = "id,question,answer,n\n"
    (tmp_path / "d.csv").write_text(
        header + "".join(f'{r["id"]},"{r["question"]}",{r["answer"]},{r["n"]}\n' for r in ROWS)
    )
    (tmp_path / "d.tsv").write_text(
        header.replace(",", "\t") + "".join("\t".join(str(v) for v in r.values()) + "\n" for r in ROWS)
    )
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "d.parquet", row_group_size=2)
    for name in ("d.jsonl", "d.jsonl.gz", "array.json", "wrapped.json", "lines.json", "d.parquet"):
        assert list(Table(str(tmp_path / name)).rows()) == ROWS, name
    for name in ("d.csv", "d.tsv"):
        assert list(Table(str(tmp_path / name)).rows()) == flat, name


def test_jsonl_rows_read_as_the_standard_library_reads_them(tmp_path: Path) -> None:
    """NaN, integers past 64 bits (orjson reads them as floats), lone surrogates: as json.loads reads them."""
    lines = [
        '{"q": "caf\\u00e9 — 😀", "n": 1.5e300, "z": -0.0, "l": [1, {"a": null}]}',
        '{"q": "x", "n": NaN, "m": -Infinity}',
        '{"q": "x", "n": 123456789012345678901234567890}',
        '{"q": "\\ud800 alone", "dup": 1, "dup": 2}',
    ]
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rows = list(Table(str(path)).rows())
    expected = [json.loads(line) for line in lines]
    assert len(rows) == len(expected)
    for row, want in zip(rows, expected, strict=True):
        assert json.dumps(row, sort_keys=True) == json.dumps(want, sort_keys=True)
        assert [type(v) for v in row.values()] == [type(v) for v in want.values()]


def test_a_malformed_line_is_a_bad_row_not_an_exception(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n{not json\n[1, 2]\n" + json.dumps(ROWS[1]) + "\n")
    rows = list(Table(str(path)).rows())
    assert rows[0] == ROWS[0] and rows[3] == ROWS[1]
    assert rows[1] == BadRow("line 2", "not valid JSON (Expecting property name enclosed in double quotes)")
    assert rows[2] == BadRow("line 3", "expected a JSON object, got list")


def test_revision_follows_the_content_and_the_name_is_the_file_name(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    path = write_jsonl(tmp_path / "sub" / "d.jsonl", ROWS)
    before = Table(str(path)).revision
    write_jsonl(path, ROWS[:2])
    assert Table(str(path)).revision != before and before.startswith("sha256:")
    assert Table(str(path)).name == "d.jsonl"


def test_a_dataset_saved_to_disk_is_read_by_split(tmp_path: Path) -> None:
    dataset_dict = datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(ROWS[:1]), "test": datasets.Dataset.from_list(ROWS[1:])}
    )
    dataset_dict.save_to_disk(str(tmp_path / "dd"))
    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "single"))
    assert list(Table(str(tmp_path / "dd"), split="test").rows()) == ROWS[1:]
    assert list(Table(str(tmp_path / "single")).rows()) == ROWS
    task = custom(tmp_path / "dd", split="test")
    assert task.problems() == []
    assert [e.example_id for e in task.load().examples] == [row_id(r) for r in ROWS[1:]]
    assert (
        "give a `split` of this saved dataset (splits: train, test)" in custom(tmp_path / "dd").problems()[0]
    )


def test_a_saved_dataset_revision_follows_its_data_not_where_or_how_often_it_was_saved(
    tmp_path: Path,
) -> None:
    def saved(name: str, rows: list[dict[str, Any]], split: str | None = None) -> str:
        data = datasets.Dataset.from_list(rows)
        (datasets.DatasetDict({split: data}) if split else data).save_to_disk(str(tmp_path / name))
        return Table(str(tmp_path / name), split=split).revision

    revision = saved("a", ROWS)
    assert revision.startswith("sha256:")
    assert saved("b", ROWS) == revision == Table(str(tmp_path / "a")).revision
    assert saved("dd", ROWS, split="test") == revision  # the split's data, not the folder layout
    assert saved("fewer", ROWS[:2]) != revision
    assert saved("edited", [{**ROWS[0], "answer": "Lyon"}, *ROWS[1:]]) != revision
    assert saved("retyped", [{**row, "n": float(row["n"])} for row in ROWS]) != revision


def test_hub_rows_go_through_the_hub_loader_with_repo_revision_split_and_subset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = []

    def fake_hub(repo: str, **kwargs: Any) -> tuple[str, Any]:
        calls.append((repo, kwargs))
        return "abc123", iter(ROWS)

    monkeypatch.setattr(tabular, "load_hub_rows", fake_hub)
    task = custom("hf:acme/capitals@v1", split="test", subset="small")
    assert task.problems() == []
    loaded = task.load()
    assert (loaded.name, loaded.revision) == ("hf:acme/capitals@v1", "abc123")
    assert [e.references for e in loaded.examples] == [["Paris"], ["Rome"], ["Madrid"]]
    assert calls[0] == (
        "acme/capitals",
        {"subset": "small", "split": "test", "revision": "v1", "task_name": "capitals"},
    )


# items -------------------------------------------------------------------------------------------


def test_items_are_rendered_with_system_prompt_and_stable_ids(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", ROWS)
    task = custom(path, system="Answer in one word.", prompt="Q: {{ question }} ({{ n * 2 }})")
    examples = list(task.load().examples)
    assert [e.example_id for e in examples] == [row_id(r) for r in ROWS]
    assert examples[0].messages == [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "Q: Capital of France? (6)"},
    ]
    assert examples[0].references == ["Paris"] and examples[0].fields == {}
    write_jsonl(path, list(reversed(ROWS)))  # ids depend on content, not on position
    assert sorted(e.example_id for e in task.load().examples) == sorted(row_id(r) for r in ROWS)
    assert [e.example_id for e in custom(path, id_field="id").load().examples] == ["q3", "q2", "q1"]


def test_repeated_ids_are_made_unique(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [ROWS[0], ROWS[0], ROWS[1]])
    ids = [e.example_id for e in custom(path).load().examples]
    assert ids == [row_id(ROWS[0]), row_id(ROWS[0]) + "#2", row_id(ROWS[1])]


def test_limit_is_a_seeded_sample_not_a_prefix(tmp_path: Path) -> None:
    rows = [{"question": f"q{i}", "answer": f"a{i}"} for i in range(200)]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    first = [e.example_id for e in custom(path, limit=10).load().examples]
    assert first == [e.example_id for e in custom(path, limit=10).load().examples]
    assert len(first) == 10 and first != [row_id(r) for r in rows[:10]]
    assert first != [e.example_id for e in custom(path, limit=10, seed=1).load().examples]


def test_several_references_from_a_list_field_or_a_dotted_path(tmp_path: Path) -> None:
    rows = [{"q": "Largest city?", "answers": {"text": ["NYC", "New York City"]}, "alts": ["a", "b"]}]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    [example] = custom(path, prompt="{{ q }}", target="answers.text").load().examples
    assert example.references == ["NYC", "New York City"]
    [example] = custom(path, prompt="{{ q }}", target="alts").load().examples
    assert example.references == ["a", "b"]
    [example] = custom(path, prompt="{{ q }}", target="{{ answers.text[1] | upper }}").load().examples
    assert example.references == ["NEW YORK CITY"]


def test_few_shot_rows_from_the_dataset_are_deterministic_and_not_evaluated(tmp_path: Path) -> None:
    rows = [{"question": f"q{i}", "answer": f"a{i}"} for i in range(20)]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    examples = list(custom(path, examples={"n": 2}).load().examples)
    assert len(examples) == 18
    shots = examples[0].messages[:-1]
    assert [m["role"] for m in shots] == ["user", "assistant", "user", "assistant"]
    shot_questions = {shots[0]["content"], shots[2]["content"]}
    assert not shot_questions & {e.messages[-1]["content"] for e in examples}
    assert all(e.messages[:-1] == shots for e in examples)
    assert [e.messages for e in custom(path, examples={"n": 2}).load().examples] == [
        e.messages for e in examples
    ]
    assert {m["content"] for m in shots[1::2]} == {"a" + q[1:] for q in shot_questions}


def test_few_shot_rows_from_a_second_file(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", ROWS)
    shots = write_jsonl(
        tmp_path / "shots.jsonl", [{"question": "Capital of Peru?", "answer": "Lima"}, ROWS[0]]
    )
    task = custom(path, examples={"path": str(shots), "n": 1})
    loaded = task.load()
    examples = list(loaded.examples)
    assert len(examples) == 3  # a second file takes nothing away from the dataset
    assert examples[0].messages[:2] == [
        {"role": "user", "content": "Capital of Peru?"},
        {"role": "assistant", "content": "Lima"},
    ]
    assert "+shots:sha256:" in loaded.revision


@pytest.mark.parametrize(
    ("target", "expected"), [(1, "B"), ("2", "C"), ("b", "B"), ("Madrid", "C"), ("  rome ", "B")]
)
def test_choice_targets_become_letters(tmp_path: Path, target: Any, expected: str) -> None:
    rows = [{"question": "Capital of Italy?", "options": ["Paris", "Rome", "Madrid"], "label": target}]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    task = custom(
        path,
        prompt="{{ question }}\n{{ options | lettered }}",
        target="label",
        choices="options",
        metrics=["choice-accuracy"],
    )
    [example] = task.load().examples
    assert example.references == [expected]
    assert example.fields == {"choices": ["Paris", "Rome", "Madrid"]}
    assert example.messages[-1]["content"] == "Capital of Italy?\nA. Paris\nB. Rome\nC. Madrid"


@pytest.mark.parametrize(
    ("steps", "reply", "expected"),
    [
        (None, "  Paris \n", "Paris"),
        (["first-line"], "\n  Paris\nbecause...", "Paris"),
        (["code-block"], 'Here:\n```json\n{"a": 1}\n```\nthanks', '{"a": 1}\n'),
        (["code-block"], "no fence", "no fence"),
        ([{"regex": r"Answer:\s*(\w+)"}], "I think. Answer: Rome.", "Rome"),
        ([{"regex": r"\d+"}], "about 42 km", "42"),
        ([{"regex": r"Answer: (\w+)"}], "no answer here", ""),
        (["code-block", "strip"], "```\n x \n```", "x"),
    ],
)
def test_postprocess_steps(tmp_path: Path, steps: Any, reply: str, expected: str) -> None:
    task = custom(write_jsonl(tmp_path / "d.jsonl", ROWS), postprocess=steps)
    assert task.postprocess(reply) == expected


def test_metrics_come_from_the_registry_in_request_order(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{**r, "test": "assert True"} for r in ROWS])
    task = custom(
        path, metrics=["rouge-l", "pass@k", {"regex-match": {"pattern": "x"}}], tests="test", samples=10
    )
    assert task.metrics() == [
        MetricInfo("rouge-l", "continuous", "fraction"),
        MetricInfo("pass@1", "pass@k", "percent"),
        MetricInfo("pass@10", "pass@k", "percent"),
        MetricInfo("regex-match", "binary", "percent"),
    ]


def test_builtin_tasks_keep_their_metric_names_and_kinds() -> None:
    assert metric_infos(TaskSpec(task="text-summarization")) == [
        MetricInfo(name, "continuous", "fraction") for name in ("rouge-1", "rouge-2", "rouge-l")
    ]
    assert metric_infos(TaskSpec(task="question-answering")) == [
        MetricInfo("exact-match", "binary", "percent"),
        MetricInfo("f1-score", "continuous", "percent"),
    ]
    assert metric_infos(TaskSpec(task="code-generation", samples=10)) == [
        MetricInfo("pass@1", "pass@k", "percent"),
        MetricInfo("pass@10", "pass@k", "percent"),
    ]


# scoring -----------------------------------------------------------------------------------------


def test_scores_per_item_in_report_scale(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", ROWS)
    task = custom(path, metrics=["exact-match", "f1-score", "rouge-1", "contains"])
    examples = list(task.load().examples)
    replies = {
        examples[0].example_id: ["Paris"],
        examples[1].example_id: ["Rome, Italy"],
        examples[2].example_id: ["no"],
    }
    scores = task.score(examples, {i: [task.postprocess(r) for r in rs] for i, rs in replies.items()})
    assert list(scores.columns) == ["example_id", "exact-match", "f1-score", "rouge-1", "contains"]
    assert scores["exact-match"].tolist() == [100.0, 0.0, 0.0]
    # 'rome italy' vs 'rome': precision 1/2, recall 1 -> F1 2/3
    assert scores["f1-score"].tolist() == pytest.approx([100.0, 200 / 3, 0.0])
    assert scores["rouge-1"].tolist() == pytest.approx([1.0, 2 / 3, 0.0])
    assert scores["contains"].tolist() == [100.0, 100.0, 0.0]


def test_pass_at_k_with_a_tests_field(tmp_path: Path) -> None:
    rows = [
        {"spec": "double", "check": "assert double(4) == 8", "solution": "def double(x):\n    return 2 * x"}
    ]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    task = custom(
        path,
        prompt="Write {{ spec }}",
        target="solution",
        tests="check",
        metrics=["pass@k"],
        samples=2,
        k=[1, 2],
    )
    [example] = task.load().examples
    assert example.fields == {"tests": "assert double(4) == 8"}
    wrong = "def double(x):\n    return x"
    scores = task.score([example], {example.example_id: [rows[0]["solution"], wrong]})
    assert scores.iloc[0]["pass@1"] == pytest.approx(50.0) and scores.iloc[0]["pass@2"] == pytest.approx(
        100.0
    )


def test_rows_that_only_fail_during_the_run_are_flagged_not_raised(tmp_path: Path) -> None:
    """Problems past the validated first rows: kept as items with a `problem`, left out of the scores."""
    good = [{"question": f"q{i}", "answer": f"{i}"} for i in range(100)]
    path = tmp_path / "d.jsonl"
    lines = [json.dumps(r) for r in good]
    lines += [
        "{broken",
        json.dumps({"question": "no answer"}),
        json.dumps({"answer": "7"}),
        json.dumps({"question": "x", "answer": "seven"}),
    ]
    path.write_text("\n".join(lines) + "\n")
    task = custom(path, metrics=["exact-match", "numeric-match"])
    assert task.problems() == []  # the first 100 rows are fine
    examples = list(task.load().examples)
    assert len(examples) == 104
    flagged = {e.example_id: e.fields["problem"] for e in examples if "problem" in e.fields}
    assert flagged == {
        "bad-line-101": "dataset: line 101: not valid JSON (Expecting property name enclosed in double "
        "quotes)",
        row_id({"question": "no answer"}): "target: no field 'answer' in this row (fields: question)",
        row_id({"answer": "7"}): "prompt: 'question' is undefined (fields in this row: answer)",
        row_id({"question": "x", "answer": "seven"}): "target: a reference is not a number (numeric-match)",
    }
    predictions = {e.example_id: [e.references[0] if e.references else ""] for e in examples}
    scores = task.score(examples, predictions)
    assert len(scores) == 100 and scores["exact-match"].eq(100.0).all()


# validation through the CLI ------------------------------------------------------------------------


def validate(
    tmp_path: Path, task: dict[str, Any], rows: list[dict[str, Any]] | None = ROWS
) -> tuple[int, str]:
    if rows is not None:
        write_jsonl(tmp_path / "data.jsonl", rows)
    request = {
        "name": "custom",
        "models": [{"id": "ref", "provider": "builtin", "model": "reference"}],
        "tasks": [
            {
                "task": "capitals",
                "dataset": "data.jsonl",
                "prompt": "{{ question }}",
                "target": "answer",
                "metrics": ["exact-match"],
                **task,
            }
        ],
    }
    (tmp_path / "request.yaml").write_text(yaml.safe_dump(request))
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "request.yaml")])
    return result.exit_code, result.output


def test_a_valid_custom_task_validates(tmp_path: Path) -> None:
    assert validate(tmp_path, {}) == (0, f"{tmp_path / 'request.yaml'}: valid (1 models x 1 tasks)\n")


@pytest.mark.parametrize(
    ("task", "rows", "message"),
    [
        (
            {"prompt": "{{ qestion }}"},
            ROWS,
            "tasks[0].prompt: unknown field 'qestion' (fields in data.jsonl: answer, id, n, question)",
        ),
        ({"system": "{{ persona }}"}, ROWS, "tasks[0].system: unknown field 'persona'"),
        ({"prompt": "{{ question "}, ROWS, "tasks[0].prompt: template syntax error at line 1"),
        (
            {"target": "gold"},
            ROWS,
            "tasks[0].target: unknown field 'gold' (fields in data.jsonl: answer, id, n, question)",
        ),
        ({"target": "{{ gold }}"}, ROWS, "tasks[0].target: unknown field 'gold'"),
        ({"id_field": "uid"}, ROWS, "tasks[0].id_field: unknown field 'uid'"),
        ({}, [], "tasks[0].dataset: no rows in"),
        (
            {},
            [ROWS[0], {"id": "q2", "question": "?", "answer": ""}],
            "tasks[0].target: row 2: no value for 'answer' in this row",
        ),
        (
            {},
            [ROWS[0], {"id": "q2", "question": "?"}],
            "tasks[0].target: row 2: no field 'answer' in this row",
        ),
        ({}, [ROWS[0], {"id": "q2", "answer": "x"}], "tasks[0].prompt: row 2: 'question' is undefined"),
        (
            {"metrics": ["pass@k"]},
            ROWS,
            "tasks[0].tests: pass@k needs `tests`, the field holding each item's tests",
        ),
        ({"metrics": ["choice-accuracy"]}, ROWS, "tasks[0].choices: choice-accuracy needs `choices`"),
        (
            {"metrics": ["exact-match", "bleu"]},
            ROWS,
            "tasks[0].metrics[1]: unknown metric 'bleu' (known: exact-match,",
        ),
        ({"metrics": ["pass@1"]}, ROWS, "tasks[0].metrics[0]: unknown metric 'pass@1' (write pass@k"),
        ({"metrics": []}, ROWS, "tasks[0].metrics: a custom task needs at least one metric"),
        ({"metrics": ["regex-match"]}, ROWS, "tasks[0].metrics[0]: regex-match needs option 'pattern'"),
        (
            {"metrics": [{"regex-match": {"pattern": "(["}}]},
            ROWS,
            "tasks[0].metrics[0]: pattern '([' is not a valid",
        ),
        (
            {"metrics": [{"exact-match": {}, "f1-score": {}}]},
            ROWS,
            "tasks[0].metrics[0]: expected a metric name or",
        ),
        (
            {"metrics": ["numeric-match"]},
            ROWS,
            "tasks[0].target: row 1: a reference is not a number (numeric-match)",
        ),
        (
            {"metrics": ["json-match"]},
            ROWS,
            "tasks[0].target: row 1: a reference is not valid JSON (json-match)",
        ),
        ({"metrics": ["json-valid"], "target": None}, ROWS, None),
        ({"target": None}, ROWS, "tasks[0].target: required by exact-match (a field or a template)"),
        (
            {"metrics": ["choice-accuracy"], "choices": "n"},
            ROWS,
            "tasks[0].choices: row 1: 'n' must be a list of 2 to 26 options, got a value of type int",
        ),
        (
            {"metrics": ["pass@k"], "tests": "n", "k": [5], "samples": 2},
            ROWS,
            "tasks[0].k: pass@5 needs samples >= 5",
        ),
        (
            {"samples": 3},
            ROWS,
            "tasks[0].samples: more than one sample per item is only used by pass@k metrics",
        ),
        ({"postprocess": ["trim"]}, ROWS, "tasks[0].postprocess[0]: unknown step 'trim'"),
        (
            {"metrics": [{"regex-match": "x"}]},
            ROWS,
            "tasks[0].metrics[0]: options of regex-match must be a mapping",
        ),
        (
            {"prompt": "{% if hint is defined %}{{ hint }} {% endif %}{{ question }}"},
            [ROWS[0], {**ROWS[1], "hint": "Europe"}],
            None,
        ),
        ({"postprocess": [{"regex": "("}]}, ROWS, "tasks[0].postprocess[0]: regex '(' is not a valid"),
        ({"examples": {}}, ROWS, "tasks[0].examples.n: how many few-shot rows"),
        (
            {"examples": {"n": 3}},
            ROWS,
            "tasks[0].examples.n: 3 few-shot rows would leave no item to evaluate",
        ),
        ({"examples": {"path": "nope.jsonl"}}, ROWS, "tasks[0].examples.path: dataset file not found"),
        ({"dataset": "data.xlsx"}, ROWS, "tasks[0].dataset: unknown format of"),
        ({"dataset": "missing.jsonl"}, ROWS, "tasks[0].dataset: dataset file not found"),
        ({"dataset": "hf:acme/capitals"}, ROWS, "tasks[0].split: required for a hub dataset"),
        ({"dataset": None}, ROWS, "tasks[0].dataset: a custom task needs a dataset"),
        ({"task": "capitals", "prompt": None}, ROWS, "tasks[0].task: unknown evaluation task 'capitals'"),
    ],
)
def test_validation_problems_name_the_task_field(
    tmp_path: Path, task: dict[str, Any], rows: list[dict[str, Any]], message: str | None
) -> None:
    code, output = validate(tmp_path, task, rows)
    if message is None:
        assert code == 0, output
    else:
        assert code == 2 and message in output, output
        assert "Traceback" not in output


def test_malformed_first_rows_and_unreadable_files_fail_validation(tmp_path: Path) -> None:
    (tmp_path / "data.jsonl").write_text(json.dumps(ROWS[0]) + "\n{oops\n")
    code, output = validate(tmp_path, {}, rows=None)
    assert code == 2 and "tasks[0].dataset: line 2: not valid JSON" in output


def test_hub_datasets_offline_fail_validation_with_a_pointer_to_local_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, output = validate(tmp_path, {"dataset": "hf:acme/capitals@main", "split": "test"})
    assert code == 2
    assert "tasks[0].dataset: cannot load 'acme/capitals' (test) from the Hugging Face hub" in output
    assert "`path:`" in output


# preview and the catalog ---------------------------------------------------------------------------


def test_preview_renders_prompts_and_targets_without_a_model(tmp_path: Path) -> None:
    validate(tmp_path, {"system": "Be brief.", "id_field": "id"})
    result = CliRunner().invoke(
        app, ["preview", str(tmp_path / "request.yaml"), "--task", "capitals", "-n", "2"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1] == "capitals (data.jsonl) · item 1 of 2 · id q1"
    assert lines[2:8] == ["[system]", "Be brief.", "[user]", "Capital of France?", "[target]", "- Paris"]
    assert "capitals (data.jsonl) · item 2 of 2 · id q2" in lines and "Madrid" not in result.output
    result = CliRunner().invoke(app, ["preview", str(tmp_path / "request.yaml"), "--task", "nope"])
    assert (
        result.exit_code == 2 and "--task: unknown evaluation task 'nope' (tasks: capitals)" in result.output
    )


def test_preview_of_the_shipped_example() -> None:
    request = Path(__file__).resolve().parents[2] / "examples" / "custom" / "request.yaml"
    result = CliRunner().invoke(app, ["preview", str(request), "--task", "support-intent", "-n", "1"])
    assert result.exit_code == 0, result.output
    assert "A. billing\nB. shipping\nC. account\nD. returns" in result.output
    assert result.output.rstrip().endswith("[target]\n- C")


def test_tasks_lists_builtin_tasks_and_every_metric() -> None:
    result = CliRunner().invoke(app, ["tasks"])
    assert result.exit_code == 0
    assert "text-summarization   dataset cnn-dailymail  metrics rouge-1, rouge-2, rouge-l" in result.output
    for name in ("exact-match", "f1-score", "numeric-match", "json-match", "choice-accuracy", "pass@k"):
        assert f"\n  {name} " in result.output
    assert "option pattern:" in result.output
