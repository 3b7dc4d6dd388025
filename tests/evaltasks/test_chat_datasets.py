"""Chat datasets: a custom task whose `messages` field holds the whole conversation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.evaltasks.test_custom_tasks import custom, validate, write_jsonl

CHAT = [
    {
        "id": "c1",
        "conversation": [
            {"role": "system", "content": "You are a support agent."},
            {"role": "user", "content": "Where is my order?"},
            {"role": "assistant", "content": "Which order number?"},
            {"role": "user", "content": "48213"},
        ],
        "answer": "It ships tomorrow.",
    },
    {"id": "c2", "conversation": [{"role": "user", "content": "Hi"}], "answer": "Hello!"},
]


def chat(tmp_path: Path, **settings: Any) -> Any:
    path = write_jsonl(tmp_path / "chat.jsonl", CHAT)
    return custom(path, prompt=None, messages="conversation", id_field="id", **settings)


def test_the_conversation_is_sent_as_is_and_the_final_answer_is_scored(tmp_path: Path) -> None:
    task = chat(tmp_path, metrics=["exact-match"])
    examples = list(task.load().examples)
    assert [e.messages for e in examples] == [row["conversation"] for row in CHAT]
    assert [e.references for e in examples] == [["It ships tomorrow."], ["Hello!"]]
    scores = task.score(examples, {"c1": ["It ships tomorrow."], "c2": ["Bye"]})
    assert scores.set_index("example_id")["exact-match"].to_dict() == {"c1": 100.0, "c2": 0.0}


@pytest.mark.parametrize(
    ("conversation", "message"),
    [
        ("hello", "must be a non-empty list of {role, content} messages"),
        ([], "must be a non-empty list"),
        ([{"role": "user"}], "message 0 must have exactly the keys role and content"),
        ([{"role": "bot", "content": "x"}], "message 0: role must be one of system, user, assistant"),
        (
            [{"role": "user", "content": "x"}, {"role": "system", "content": "y"}],
            "message 1: a system message",
        ),
        (
            [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}],
            "the last message must be",
        ),
    ],
)
def test_a_malformed_conversation_is_a_problem_of_the_messages_field(
    tmp_path: Path, conversation: Any, message: str
) -> None:
    rows = [{"id": "c1", "conversation": conversation, "answer": "a"}]
    code, output = validate(tmp_path, {"prompt": None, "messages": "conversation"}, rows)
    assert code == 2 and "tasks[0].messages: row 1: " in output and message in output, output


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ({"messages": "chat", "prompt": None}, "tasks[0].messages: unknown field 'chat'"),
        ({"messages": "conversation", "prompt": "{{ answer }}"}, "tasks[0].prompt: not with `messages`"),
        ({"messages": "conversation", "prompt": None, "system": "Be brief."}, "tasks[0].system: not with"),
        ({"messages": "conversation", "prompt": None, "examples": {"n": 1}}, "tasks[0].examples: not with"),
    ],
)
def test_settings_that_do_not_fit_a_chat_dataset(tmp_path: Path, task: dict[str, Any], message: str) -> None:
    code, output = validate(tmp_path, task, CHAT)
    assert code == 2 and message in output, output


def test_a_valid_chat_task_validates(tmp_path: Path) -> None:
    code, output = validate(tmp_path, {"prompt": None, "messages": "conversation"}, CHAT)
    assert code == 0, output
