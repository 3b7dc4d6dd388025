"""Custom evaluation tasks: a dataset, Jinja2 templates over its rows, and metrics from the shared registry.

Everything that can be checked before a model is called is checked in `problems()` on the first
VALIDATION_ROWS rows (templates, field names, references, metric options). A row further down that
turns out to be unusable (no target, a malformed line) is not a failed run: it becomes an item flagged
with `fields["problem"]`, stored with the examples, left out of the scores and so counted among the
errored items of the report.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import jinja2
import jinja2.meta
import pandas as pd
from jinja2.sandbox import SandboxedEnvironment

from benchgate.datasets.sampling import seeded_sample
from benchgate.datasets.tabular import BadRow, Row, Table
from benchgate.errors import DatasetError
from benchgate.evaltasks.base import EvalTask, LoadedDataset, MetricInfo, registry_metric
from benchgate.spec.example import Example
from scorers import metrics as registry
from scorers.passk import default_ks

log = logging.getLogger(__name__)

VALIDATION_ROWS = 100
MAX_ROW_PROBLEMS = 5
SANDBOX_TIMEOUT_SECONDS = 3.0
POSTPROCESS_STEPS = ("strip", "first-line", "code-block")
UNRENDERABLE = "(benchgate: the prompt of this item could not be rendered; it is not scored)"
_FENCE = re.compile(r"```[\w+.-]*[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)


class ItemProblem(Exception):
    """One row cannot become a scorable item; `field` is the task setting it concerns."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class _Item:
    example_id: str
    example: Example | None  # None: the prompt itself could not be rendered
    problem: ItemProblem | None = None


def lettered(choices: Iterable[Any]) -> str:
    """Jinja filter: ['Paris', 'Rome'] -> 'A. Paris\\nB. Rome', the usual multiple-choice layout."""
    return "\n".join(f"{registry.LETTERS[i]}. {choice}" for i, choice in enumerate(choices))


def _is_template(text: str) -> bool:
    return "{{" in text or "{%" in text


def _lookup(row: Row, name: str) -> Any:
    """A field by name, or a dotted path into nested objects ('answers.text' in SQuAD's hub rows)."""
    if name in row:
        return row[name]
    value: Any = row
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(name)
        value = value[part]
    return value


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def row_id(row: Row) -> str:
    """Stable id of a row without an id field: a digest of its content, independent of file order."""
    content = json.dumps(row, sort_keys=True, ensure_ascii=False, default=str)
    return "row-" + hashlib.sha1(content.encode("utf-8")).hexdigest()[:16]


class CustomTask(EvalTask):
    require_isolation = False

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        self.table = Table(
            spec.path or spec.dataset or "", split=spec.split, subset=spec.subset, task_name=spec.task
        )
        self._env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
        self._env.filters["lettered"] = lettered

    # definition ------------------------------------------------------------------------------
    @property
    def dataset_name(self) -> str:
        if self.spec.path and self.spec.dataset:
            return self.spec.dataset
        return self.table.name

    @cached_property
    def metric_settings(self) -> list[tuple[str, dict[str, Any]]]:
        """(name, options) per `metrics` entry, in request order; malformed entries are left to problems()."""
        settings = []
        for entry in self.spec.metrics or []:
            if isinstance(entry, str):
                settings.append((entry, {}))
            elif len(entry) == 1 and isinstance(next(iter(entry.values())), dict):
                name, options = next(iter(entry.items()))
                settings.append((name, options))
        return settings

    def ks(self) -> list[int]:
        return self.spec.k or default_ks(self.spec.samples)

    def metrics(self) -> list[MetricInfo]:
        infos = []
        for name, _ in self.metric_settings:
            if name == registry.PASS_AT_K:
                infos.extend(registry_metric(f"pass@{k}") for k in self.ks())
            elif name in registry.METRICS:
                infos.append(registry_metric(name))
        return infos

    @cached_property
    def _templates(self) -> dict[str, jinja2.Template]:
        """Compiled templates by setting; only valid ones (problems() reports the others)."""
        compiled = {}
        for field, source in self._template_sources().items():
            try:
                compiled[field] = self._env.from_string(source)
            except jinja2.TemplateSyntaxError:
                continue
        return compiled

    def _template_sources(self) -> dict[str, str]:
        spec, sources = self.spec, {}
        if spec.prompt is not None:
            sources["prompt"] = spec.prompt
        if spec.system is not None:
            sources["system"] = spec.system
        for field in ("target", "tests"):
            value = getattr(spec, field)
            if value is not None and _is_template(value):
                sources[field] = value
        return sources

    # validation ------------------------------------------------------------------------------
    def problems(self) -> list[str]:
        problems = self._spec_problems()
        if problems:
            return problems
        return self._data_problems()

    def _spec_problems(self) -> list[str]:
        spec, problems = self.spec, []
        if not (spec.dataset or spec.path):
            problems.append(
                "dataset: a custom task needs a dataset: a file (jsonl, json, csv, parquet) or hf:<repo>"
            )
        else:
            problems.extend(f"{'path' if spec.path else 'dataset'}: {p}" for p in self.table.problems())
            if self.table.is_hub and not spec.split:
                problems.append("split: required for a hub dataset (e.g. test, validation, train)")
        problems.extend(self._metric_problems())
        for field, source in self._template_sources().items():
            try:
                self._env.parse(source)
            except jinja2.TemplateSyntaxError as error:
                problems.append(f"{field}: template syntax error at line {error.lineno}: {error.message}")
        for i, step in enumerate(spec.postprocess or []):
            problems.extend(f"postprocess[{i}]: {p}" for p in _step_problems(step))
        if spec.examples and spec.examples.path is None and spec.examples.n is None:
            problems.append(
                "examples.n: how many few-shot rows to take from the dataset (or give examples.path)"
            )
        return problems

    def _metric_problems(self) -> list[str]:
        spec, problems = self.spec, []
        if not spec.metrics:
            return [
                f"metrics: a custom task needs at least one metric (known: {', '.join(registry.METRICS)})"
            ]
        seen: set[str] = set()
        for i, entry in enumerate(spec.metrics):
            if isinstance(entry, dict) and len(entry) != 1:
                problems.append(f"metrics[{i}]: expected a metric name or {{name: {{options}}}}, got {entry}")
                continue
            name, options = (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))
            if not isinstance(options, dict):
                problems.append(
                    f"metrics[{i}]: options of {name} must be a mapping, e.g. {{{name}: {{...}}}}"
                )
                continue
            if name not in registry.METRICS:
                hint = " (write pass@k; k and samples set which pass@N)" if name.startswith("pass@") else ""
                problems.append(
                    f"metrics[{i}]: unknown metric {name!r}{hint} (known: {', '.join(registry.METRICS)})"
                )
                continue
            if name in seen:
                problems.append(f"metrics[{i}]: {name} is listed twice")
            seen.add(name)
            problems.extend(f"metrics[{i}]: {p}" for p in registry.option_problems(name, options))
        chosen = [registry.METRICS[n] for n, _ in self.metric_settings if n in registry.METRICS]
        for need in ("choices", "tests"):
            users = [m.name for m in chosen if need in m.needs]
            if users and getattr(spec, need) is None:
                problems.append(
                    f"{need}: {', '.join(users)} needs `{need}`, the field holding each item's {need}"
                )
        needing_target = [m.name for m in chosen if m.needs_reference]
        if needing_target and spec.target is None:
            problems.append(f"target: required by {', '.join(needing_target)} (a field or a template)")
        if any(m.name == registry.PASS_AT_K for m in chosen):
            too_big = [k for k in self.ks() if k > spec.samples]
            if too_big:
                problems.append(
                    f"k: pass@{too_big[0]} needs samples >= {too_big[0]} (samples is {spec.samples})"
                )
        return problems

    def _data_problems(self) -> list[str]:
        where = "path" if self.spec.path else "dataset"
        try:
            rows = list(itertools.islice(self.table.rows(), VALIDATION_ROWS))
        except DatasetError as error:
            return [f"{where}: {error}"]
        good = [row for row in rows if not isinstance(row, BadRow)]
        if not good:
            bad = next((r for r in rows if isinstance(r, BadRow)), None)
            detail = f" ({bad.where}: {bad.message})" if bad else ""
            return [f"{where}: no rows in {self.table.location}{detail}"]
        fields = sorted(set().union(*good))  # optional fields may be absent from the first row
        problems = self._field_problems(fields)
        if problems:
            return problems
        problems = self._row_problems(rows)
        problems.extend(self._shot_problems(len(rows)))
        return problems

    def _field_problems(self, fields: list[str]) -> list[str]:
        """Names the templates and settings use that none of the first rows has."""
        known = ", ".join(fields)
        problems = []
        for field, template_source in self._template_sources().items():
            used = jinja2.meta.find_undeclared_variables(self._env.parse(template_source))
            for name in sorted(used - set(fields) - set(self._env.globals)):
                problems.append(f"{field}: unknown field {name!r} (fields in {self.table.name}: {known})")
        for field in ("target", "tests", "choices", "id_field"):
            name = getattr(self.spec, field)
            if name is None or (field in ("target", "tests") and _is_template(name)):
                continue
            root = name if name in fields else name.split(".")[0]
            if root not in fields:
                problems.append(f"{field}: unknown field {name!r} (fields in {self.table.name}: {known})")
        return problems

    def _row_problems(self, rows: list[Row | BadRow]) -> list[str]:
        problems = []
        for position, row in enumerate(rows, start=1):
            if isinstance(row, BadRow):
                problems.append(f"{'path' if self.spec.path else 'dataset'}: {row.where}: {row.message}")
            else:
                item = self._item(row, [])
                if item.problem:
                    problems.append(f"{item.problem.field}: row {position}: {item.problem}")
            if len(problems) >= MAX_ROW_PROBLEMS:
                problems.append(f"(stopped after {MAX_ROW_PROBLEMS} row problems)")
                break
        return problems

    def _shot_problems(self, rows_read: int) -> list[str]:
        shots = self.spec.examples
        if shots is None:
            return []
        if shots.path is None:
            if rows_read < VALIDATION_ROWS and shots.n is not None and shots.n >= rows_read:
                return [
                    f"examples.n: {shots.n} few-shot rows would leave no item to evaluate ({rows_read} rows)"
                ]
            return []
        try:
            self._turns(self._shot_rows())
        except DatasetError as error:
            return [f"examples.path: {error}"]
        except ItemProblem as problem:
            return [f"examples.path: {_describe(problem)}"]
        return []

    # items -----------------------------------------------------------------------------------
    def _render(self, field: str, row: Row) -> str:
        try:
            return self._templates[field].render(row)
        except jinja2.UndefinedError as error:
            raise ItemProblem(
                field, f"{error.message} (fields in this row: {', '.join(sorted(row))})"
            ) from None
        except jinja2.TemplateError as error:
            raise ItemProblem(field, f"template error: {error}") from None
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as error:
            raise ItemProblem(field, f"{type(error).__name__}: {error}") from None

    def _field_or_template(self, field: str, row: Row) -> Any:
        source = getattr(self.spec, field)
        if _is_template(source):
            return self._render(field, row).strip()
        try:
            return _lookup(row, source)
        except KeyError:
            raise ItemProblem(
                field, f"no field {source!r} in this row (fields: {', '.join(sorted(row))})"
            ) from None

    def _references(self, row: Row) -> tuple[list[str], list[str] | None]:
        """The references, and the choices when the task has them (references are then choice letters)."""
        spec = self.spec
        if spec.target is None:
            return [], None
        value = self._field_or_template("target", row)
        if value is None or value == "" or value == []:
            raise ItemProblem("target", f"no value for {spec.target!r} in this row")
        if spec.choices is None:
            values = value if isinstance(value, list) else [value]
            return [_as_text(v) for v in values], None
        try:
            choices = _lookup(row, spec.choices)
        except KeyError:
            raise ItemProblem("choices", f"no field {spec.choices!r} in this row") from None
        if not isinstance(choices, list) or not 2 <= len(choices) <= len(registry.LETTERS):
            raise ItemProblem(
                "choices", f"{spec.choices!r} must be a list of 2 to 26 options, got {choices!r}"
            )
        choices = [_as_text(c) for c in choices]
        index = _target_choice(value, choices)
        if index is None:
            raise ItemProblem(
                "target", f"{value!r} is not one of the choices {choices} (nor their index/letter)"
            )
        return [registry.LETTERS[index]], choices

    def _item(self, row: Row, shots: list[dict[str, str]]) -> _Item:
        spec = self.spec
        example_id, id_problem = row_id(row), None
        if spec.id_field:
            try:
                example_id = _as_text(_lookup(row, spec.id_field))
            except KeyError:
                id_problem = ItemProblem("id_field", f"no field {spec.id_field!r} in this row")
        try:
            messages = [{"role": "system", "content": self._render("system", row)}] if spec.system else []
            messages += [*shots, {"role": "user", "content": self._render("prompt", row)}]
        except ItemProblem as problem:
            return _Item(example_id, None, problem)
        fields: dict[str, Any] = {}
        try:
            if id_problem:
                raise id_problem
            references, choices = self._references(row)
            if choices is not None:
                fields["choices"] = choices
            if spec.tests is not None:
                tests = self._field_or_template("tests", row)
                if not isinstance(tests, str) or not tests.strip():
                    raise ItemProblem("tests", f"no test code in {spec.tests!r} for this row")
                fields["tests"] = tests
            for name, _ in self.metric_settings:
                if name in registry.METRICS and registry.METRICS[name].needs_reference:
                    reason = registry.reference_problem(name, references, choices)
                    if reason:
                        raise ItemProblem("target", f"{reason} ({name})")
        except ItemProblem as problem:
            return _Item(
                example_id, Example(example_id, messages, [], {"problem": _describe(problem)}), problem
            )
        return _Item(example_id, Example(example_id, messages, references, fields))

    def _shot_rows(self) -> list[Row]:
        """The few-shot rows: seeded from the dataset's complete rows, or the first `n` of examples.path."""
        shots = self.spec.examples
        if shots is None:
            return []
        if shots.path is None:
            candidates = (
                row
                for row in self.table.rows()
                if not isinstance(row, BadRow) and self._item(row, []).problem is None
            )
            return list(seeded_sample(candidates, shots.n, self.spec.seed, key=lambda r: "shot:" + row_id(r)))
        rows = []
        for row in itertools.islice(Table(shots.path, task_name=self.spec.task).rows(), shots.n):
            if isinstance(row, BadRow):
                raise DatasetError(f"{shots.path}, {row.where}: {row.message}")
            rows.append(row)
        return rows

    def _turns(self, rows: list[Row]) -> list[dict[str, str]]:
        """Few-shot rows as chat turns: the rendered prompt, then the reference as the assistant's reply."""
        turns = []
        for row in rows:
            item = self._item(row, [])
            if item.problem:
                raise item.problem
            assert item.example is not None
            reply = item.example.references[0] if item.example.references else ""
            turns += [item.example.messages[-1], {"role": "assistant", "content": reply}]
        return turns

    # the EvalTask interface ------------------------------------------------------------------
    def load(self) -> LoadedDataset:
        shot_rows = self._shot_rows()
        try:
            shots = self._turns(shot_rows)
        except ItemProblem as problem:
            raise DatasetError(f"{self.spec.task}: few-shot example: {_describe(problem)}") from None
        revision = self.table.revision
        shot_ids: set[str] = set()
        if self.spec.examples and self.spec.examples.path:
            revision += "+shots:" + Table(self.spec.examples.path).revision
        else:
            shot_ids = {row_id(row) for row in shot_rows}
        examples = self._examples(shots, shot_ids)
        chosen = seeded_sample(examples, self.spec.limit, self.spec.seed, key=lambda e: e.example_id)
        return LoadedDataset(self.dataset_name, revision, chosen)

    def _examples(self, shots: list[dict[str, str]], shot_ids: set[str]) -> Iterator[Example]:
        """Every row as an Example, streamed; ids made unique (a repeated id gets '#2', '#3', ...)."""
        seen: dict[str, int] = {}
        flagged = 0
        for position, row in enumerate(self.table.rows(), start=1):
            if isinstance(row, BadRow):
                problem = ItemProblem("dataset", f"{row.where}: {row.message}")
                item = _Item("bad-" + row.where.replace(" ", "-"), None, problem)
            elif shot_ids and row_id(row) in shot_ids:
                continue
            else:
                item = self._item(row, shots)
            seen[item.example_id] = count = seen.get(item.example_id, 0) + 1
            example_id = item.example_id if count == 1 else f"{item.example_id}#{count}"
            if item.example is None:
                unrenderable = [{"role": "user", "content": UNRENDERABLE}]
                example = Example(example_id, unrenderable, [], {"problem": _describe(item.problem)})
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
                    _describe(item.problem),
                )
            yield example
        if flagged:
            log.warning("%s: %d rows are not scored (counted as errored items)", self.spec.task, flagged)

    def postprocess(self, output: str) -> str:
        text = output
        for step in self.spec.postprocess or ["strip"]:
            text = _apply(step, text)
        return text

    def score(self, examples: list[Example], predictions: dict[str, list[str]]) -> pd.DataFrame:
        columns = ["example_id", *(m.name for m in self.metrics())]
        rows: dict[str, dict[str, Any]] = {}
        for example in examples:
            if "problem" in example.fields:
                continue
            row = self._score_item(example, predictions[example.example_id][0])
            if row is not None:
                rows[example.example_id] = row
        names = {name for name, _ in self.metric_settings}
        if names & set(registry.ROUGE) and rows:
            scored = registry.rouge_best(
                [predictions[i][0] for i in rows], [e.references for e in examples if e.example_id in rows]
            )
            for values, row in zip(scored, rows.values(), strict=True):
                row.update({n: values[n] for n in registry.ROUGE if n in names})
        if registry.PASS_AT_K in names and rows:
            by_id = {e.example_id: e for e in examples}
            programs = {
                i: [f"{prediction}\n\n{by_id[i].fields['tests']}\n" for prediction in predictions[i]]
                for i in rows
            }
            estimates = registry.pass_at_k(
                programs, self.ks(), timeout=SANDBOX_TIMEOUT_SECONDS, require_isolation=self.require_isolation
            )
            for i, row in rows.items():
                row.update(estimates[i])
        return pd.DataFrame([{"example_id": i, **row} for i, row in rows.items()], columns=columns)

    def _score_item(self, example: Example, prediction: str) -> dict[str, float] | None:
        values = {}
        for name, options in self.metric_settings:
            if name in registry.ROUGE or name == registry.PASS_AT_K:
                continue
            try:
                values[name] = registry.score_item(
                    name, prediction, example.references, options, example.fields.get("choices")
                )
            except registry.ReferenceProblem as problem:
                log.warning("%s: item %s is not scored: %s", self.spec.task, example.example_id, problem)
                return None
        return values


def _describe(problem: ItemProblem) -> str:
    return f"{problem.field}: {problem}"


def _target_choice(value: Any, choices: list[str]) -> int | None:
    """A target names its choice by 0-based index (int or digits), by letter, or by the choice's text."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if 0 <= value < len(choices) else None
    text = str(value).strip()
    if text.isdigit():
        return int(text) if int(text) < len(choices) else None
    if len(text) == 1 and text.upper() in registry.LETTERS[: len(choices)]:
        return registry.LETTERS.index(text.upper())
    return registry.choice_index(text, choices)


def _step_problems(step: Any) -> list[str]:
    if isinstance(step, str):
        return (
            []
            if step in POSTPROCESS_STEPS
            else [f"unknown step {step!r} (steps: {', '.join(POSTPROCESS_STEPS)}, {{regex: <pattern>}})"]
        )
    if set(step) != {"regex"} or not isinstance(step["regex"], str):
        return [f"expected one of {', '.join(POSTPROCESS_STEPS)} or {{regex: <pattern>}}, got {step}"]
    try:
        re.compile(step["regex"])
    except re.error as error:
        return [f"regex {step['regex']!r} is not a valid regular expression: {error}"]
    return []


def _apply(step: str | dict[str, str], text: str) -> str:
    """One post-processing step; a regex that does not match yields '' (the reply had no answer)."""
    if step == "strip":
        return text.strip()
    if step == "first-line":
        return next((line.strip() for line in text.splitlines() if line.strip()), "")
    if step == "code-block":
        match = _FENCE.search(text)
        return match.group(1) if match else text
    assert isinstance(step, dict)
    match = re.search(step["regex"], text, re.DOTALL)
    if match is None:
        return ""
    return (
        next((g for g in match.groups() if g is not None), "") if match.groups() else match.group(0)
    ).strip()
