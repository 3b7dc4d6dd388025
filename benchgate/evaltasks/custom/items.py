"""A custom task's rows as Examples: rendered messages, references, few-shot turns, flagged problem rows.

A row that cannot become a scorable item (no target, a malformed line) does not fail the run: it
becomes an Example flagged with `fields["problem"]`, stored with the others, left out of the scores
and so counted among the errored items of the report.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from benchgate.datasets.sampling import seeded_sample
from benchgate.datasets.tabular import BadRow, Row, Table
from benchgate.errors import DatasetError
from benchgate.evaltasks.base import LoadedDataset
from benchgate.evaltasks.custom.definition import Definition
from benchgate.evaltasks.custom.rows import ItemProblem, as_text, lookup, row_id
from benchgate.spec.example import Example
from scorers.metrics import reference_problem
from scorers.metrics.multiple_choice import LETTERS, choice_index

log = logging.getLogger(__name__)

UNRENDERABLE = "(benchgate: the prompt of this item could not be rendered; it is not scored)"


@dataclass(frozen=True)
class Item:
    example_id: str
    example: Example | None  # None: the prompt itself could not be rendered
    problem: ItemProblem | None = None


class Items:
    """Builds a custom task's items from its rows, as the run and validation both need them."""

    def __init__(self, definition: Definition) -> None:
        self.definition = definition
        self.spec = definition.spec

    def item(self, row: Row, shots: list[dict[str, str]]) -> Item:
        spec, definition = self.spec, self.definition
        id_problem = None
        if spec.id_field:
            try:
                example_id = as_text(lookup(row, spec.id_field))
            except KeyError:
                example_id = row_id(row)
                id_problem = ItemProblem("id_field", f"no field {spec.id_field!r} in this row")
        else:
            example_id = row_id(row)
        try:
            if spec.messages is not None:
                messages = conversation(row, spec.messages)
            else:
                system = (
                    [{"role": "system", "content": definition.render("system", row)}] if spec.system else []
                )
                messages = [*system, *shots, {"role": "user", "content": definition.render("prompt", row)}]
        except ItemProblem as problem:
            return Item(example_id, None, problem)
        fields: dict[str, Any] = {}
        try:
            if id_problem:
                raise id_problem
            references, choices = self._references(row)
            if choices is not None:
                fields["choices"] = choices
            if spec.tests is not None:
                tests = definition.field_or_template("tests", row)
                if not isinstance(tests, str) or not tests.strip():
                    raise ItemProblem("tests", f"no test code in {spec.tests!r} for this row")
                fields["tests"] = tests
            if definition.judge_fields:  # what the judges' templates read besides answers and references
                fields["judge_inputs"] = {
                    name: row[name] for name in sorted(definition.judge_fields) if name in row
                }
            for metric, _ in definition.chosen:
                if metric.needs_reference:
                    reason = reference_problem(metric.name, references, fields)
                    if reason:
                        raise ItemProblem("target", f"{reason} ({metric.name})")
        except ItemProblem as problem:
            return Item(
                example_id, Example(example_id, messages, [], {"problem": problem.describe()}), problem
            )
        return Item(example_id, Example(example_id, messages, references, fields))

    def _references(self, row: Row) -> tuple[list[str], list[str] | None]:
        """The references, and the choices when the task has them (references are then choice letters)."""
        spec = self.spec
        if spec.target is None:
            return [], None
        value = self.definition.field_or_template("target", row)
        if value is None or value == "" or value == []:
            raise ItemProblem("target", f"no value for {spec.target!r} in this row")
        if spec.choices is None:
            values = value if isinstance(value, list) else [value]
            return [as_text(v) for v in values], None
        try:
            choices = lookup(row, spec.choices)
        except KeyError:
            raise ItemProblem("choices", f"no field {spec.choices!r} in this row") from None
        if not isinstance(choices, list) or not 2 <= len(choices) <= len(LETTERS):
            got = (
                f"{len(choices)} options"
                if isinstance(choices, list)
                else f"a value of type {type(choices).__name__}"
            )
            raise ItemProblem("choices", f"{spec.choices!r} must be a list of 2 to 26 options, got {got}")
        choices = [as_text(c) for c in choices]
        index = target_choice(value, choices)
        if index is None:
            raise ItemProblem(
                "target", f"the target is not one of the {len(choices)} choices (nor their index or letter)"
            )
        return [LETTERS[index]], choices

    def shot_rows(self) -> list[Row]:
        """The few-shot rows: seeded from the dataset's complete rows, or the first `n` of examples.path."""
        shots = self.spec.examples
        if shots is None:
            return []
        if shots.path is None:
            candidates = (
                row
                for row in self.definition.table.rows()
                if not isinstance(row, BadRow) and self.item(row, []).problem is None
            )
            return list(seeded_sample(candidates, shots.n, self.spec.seed, key=lambda r: "shot:" + row_id(r)))
        rows = []
        for row in itertools.islice(Table(shots.path, task_name=self.spec.task).rows(), shots.n):
            if isinstance(row, BadRow):
                raise DatasetError(f"{shots.path}, {row.where}: {row.message}")
            rows.append(row)
        return rows

    def turns(self, rows: list[Row]) -> list[dict[str, str]]:
        """Few-shot rows as chat turns: the rendered prompt, then the reference as the assistant's reply."""
        turns = []
        for row in rows:
            item = self.item(row, [])
            if item.problem:
                raise item.problem
            assert item.example is not None
            reply = item.example.references[0] if item.example.references else ""
            turns += [item.example.messages[-1], {"role": "assistant", "content": reply}]
        return turns

    def load(self) -> LoadedDataset:
        shot_rows = self.shot_rows()
        try:
            shots = self.turns(shot_rows)
        except ItemProblem as problem:
            raise DatasetError(f"{self.spec.task}: few-shot example: {problem.describe()}") from None
        revision = self.definition.table.revision
        shot_ids: set[str] = set()
        if self.spec.examples and self.spec.examples.path:
            revision += "+shots:" + Table(self.spec.examples.path).revision
        else:
            shot_ids = {row_id(row) for row in shot_rows}
        examples = self._examples(shots, shot_ids)
        chosen = seeded_sample(examples, self.spec.limit, self.spec.seed, key=lambda e: e.example_id)
        return LoadedDataset(self.definition.dataset_name, revision, chosen)

    def _examples(self, shots: list[dict[str, str]], shot_ids: set[str]) -> Iterator[Example]:
        """Every row as an Example, streamed; ids made unique (a repeated id gets '#2', '#3', ...)."""
        seen: dict[str, int] = {}
        flagged = 0
        for position, row in enumerate(self.definition.table.rows(), start=1):
            if isinstance(row, BadRow):
                problem = ItemProblem("dataset", f"{row.where}: {row.message}")
                item = Item("bad-" + row.where.replace(" ", "-"), None, problem)
            elif shot_ids and row_id(row) in shot_ids:
                continue
            else:
                item = self.item(row, shots)
            seen[item.example_id] = count = seen.get(item.example_id, 0) + 1
            example_id = item.example_id if count == 1 else f"{item.example_id}#{count}"
            if item.example is None:
                assert item.problem is not None
                unrenderable = [{"role": "user", "content": UNRENDERABLE}]
                example = Example(example_id, unrenderable, [], {"problem": item.problem.describe()})
            else:
                example = item.example
                if example_id != example.example_id:
                    example = Example(example_id, example.messages, example.references, example.fields)
            if item.problem:
                flagged += 1
                log.warning(
                    "%s: row %d (%s) is not scored: %s",
                    self.spec.task,
                    position,
                    example_id,
                    item.problem.describe(),
                )
            yield example
        if flagged:
            log.warning("%s: %d rows are not scored (counted as errored items)", self.spec.task, flagged)


ROLES = ("system", "user", "assistant")


def conversation(row: Row, name: str) -> list[dict[str, str]]:
    """A chat dataset's conversation as the model's messages: a system message only first, the user's
    turn last (the model writes the final answer). Problems name positions, never the data."""
    try:
        value = lookup(row, name)
    except KeyError:
        raise ItemProblem(
            "messages", f"no field {name!r} in this row (fields: {', '.join(sorted(row))})"
        ) from None
    if not isinstance(value, list) or not value:
        raise ItemProblem("messages", f"{name!r} must be a non-empty list of {{role, content}} messages")
    messages = []
    for i, message in enumerate(value):
        if not isinstance(message, dict) or set(message) != {"role", "content"}:
            raise ItemProblem("messages", f"message {i} must have exactly the keys role and content")
        role, content = message["role"], message["content"]
        if role not in ROLES or not isinstance(content, str):
            raise ItemProblem(
                "messages", f"message {i}: role must be one of {', '.join(ROLES)} and content a string"
            )
        if role == "system" and i > 0:
            raise ItemProblem("messages", f"message {i}: a system message may only come first")
        messages.append({"role": role, "content": content})
    if messages[-1]["role"] != "user":
        raise ItemProblem("messages", "the last message must be the user's (the model answers it)")
    return messages


def target_choice(value: Any, choices: list[str]) -> int | None:
    """A target names its choice by 0-based index (int or digits), by letter, or by the choice's text."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if 0 <= value < len(choices) else None
    text = str(value).strip()
    if text.isdigit():
        return int(text) if int(text) < len(choices) else None
    if len(text) == 1 and text.upper() in LETTERS[: len(choices)]:
        return LETTERS.index(text.upper())
    return choice_index(text, choices)
