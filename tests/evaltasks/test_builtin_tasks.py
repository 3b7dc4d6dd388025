"""The built-in task index: every entry is an EvalTask that states its items' kind and puts it on them,
scores predictions offline, and is imported only when used; the builtin models answer every kind."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchgate.datasets.kinds import KIND_FIELD, KINDS
from benchgate.errors import ConfigurationError, ProviderConfigError
from benchgate.evaltasks import BUILTIN, BUILTIN_TASKS, builtin_task, make_task
from benchgate.evaltasks.base import EvalTask
from benchgate.evaltasks.offline import score_predictions
from benchgate.providers.builtin import ANSWERS, MODELS, BuiltinProvider
from benchgate.spec.example import Example
from benchgate.spec.request import ModelSpec, TaskSpec

CONTEXT = "The bridge opened in 1932. It was designed by Ada Ferris. Tolls were abolished later."
SQUAD = {
    "data": [
        {
            "title": "Bridge",
            "paragraphs": [
                {
                    "context": CONTEXT,
                    "qas": [
                        {
                            "id": "q1",
                            "question": "The bridge opened in which year?",
                            "answers": [{"text": "1932"}],
                        },
                        {"id": "q2", "question": "Who painted it?", "answers": [], "is_impossible": True},
                    ],
                }
            ],
        }
    ]
}
ARTICLE = "The mayor spoke. Crowds cheered loudly. The rain stopped. Everyone went home."


@pytest.fixture
def datasets_on_disk(tmp_path: Path) -> dict[str, str | None]:
    """A tiny local copy of each built-in dataset, in its original format (HumanEval: the bundled one)."""
    (tmp_path / "squad.json").write_text(json.dumps(SQUAD))
    row = {"id": "a1", "article": ARTICLE, "highlights": "The mayor spoke.\nCrowds cheered."}
    (tmp_path / "cnn.jsonl").write_text(json.dumps(row) + "\n")
    return {
        "question-answering": str(tmp_path / "squad.json"),
        "text-summarization": str(tmp_path / "cnn.jsonl"),
        "code-generation": None,
    }


def reply(model: str, example: Example) -> str:
    provider = BuiltinProvider(ModelSpec(id="m", provider="builtin", model=model), None)
    return asyncio.run(provider.complete(example, 0)).text


def test_the_index_names_each_task_class_and_imports_none_of_them_up_front() -> None:
    probe = "import sys, benchgate.evaltasks; print(' '.join(m for m in sys.modules if 'evaltasks.' in m))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.split() == ["benchgate.evaltasks.base"]
    assert tuple(BUILTIN) == BUILTIN_TASKS
    for name in BUILTIN_TASKS:
        task_class = builtin_task(name)
        assert issubclass(task_class, EvalTask)
        assert task_class.example_kind in KINDS.values(), name
        assert task_class.score_offline.__func__ is not EvalTask.score_offline.__func__, name
    with pytest.raises(ConfigurationError, match="`benchgate score` supports text-summarization"):
        score_predictions("capitals", "p.jsonl", None, None)


def test_every_kind_of_item_has_builtin_answers() -> None:
    assert set(ANSWERS) == set(KINDS)
    assert MODELS == ("reference", "baseline", "lead-3", "sliding-window")


@pytest.mark.parametrize("name", BUILTIN_TASKS)
def test_items_carry_their_declared_kind_and_the_reference_model_scores_full_marks(
    name: str, datasets_on_disk: dict[str, str | None]
) -> None:
    task = make_task(TaskSpec(task=name, path=datasets_on_disk[name], limit=2))
    kind = type(task).example_kind
    assert kind is not None
    examples = list(task.load().examples)
    assert examples
    for example in examples:
        assert example.fields[KIND_FIELD] == kind.name
        assert set(kind.fields) <= set(example.fields)
        assert reply("baseline", example)
    predictions = {e.example_id: [task.postprocess(reply("reference", e))] for e in examples}
    scores = task.score(examples, predictions)
    full = 1.0 if task.metrics()[0].scale == "fraction" else 100.0
    for metric in task.metrics():
        assert scores[metric.name].tolist() == pytest.approx([full] * len(examples)), metric.name


def test_baselines_follow_the_declared_kind_not_the_field_names() -> None:
    article = Example("a", [], ["ref"], {KIND_FIELD: "news-article", "article": ARTICLE})
    assert reply("lead-3", article) == "The mayor spoke.\nCrowds cheered loudly.\nThe rain stopped."
    assert reply("baseline", article) == reply("lead-3", article)
    passage = Example("p", [], [], {KIND_FIELD: "passage-question", "context": CONTEXT, "question": "Who?"})
    assert reply("reference", passage) == "unanswerable"
    undeclared = Example("u", [], ["Paris"], {"article": ARTICLE, "context": CONTEXT})  # a custom task's item
    assert reply("reference", undeclared) == "Paris"
    for model in ("baseline", "lead-3", "sliding-window"):
        with pytest.raises(ProviderConfigError, match="has no answer for this kind of task"):
            reply(model, undeclared)
    with pytest.raises(ProviderConfigError, match="has no answer"):
        reply("sliding-window", article)
