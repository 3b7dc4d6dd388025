"""Everything about a custom task that can be checked before a model is called, as 'field: message'.

The settings are checked first; only when they are sound are the first VALIDATION_ROWS rows read and
checked against them (field names, templates, references, few-shot rows). Rows further down are not
read here: a problem there becomes a flagged item during the run (items.py), not a failed request.
"""

from __future__ import annotations

import itertools
from typing import get_args

import jinja2

from benchgate.datasets.tabular import BadRow, Row
from benchgate.errors import DatasetError
from benchgate.evaltasks.custom.definition import Definition
from benchgate.evaltasks.custom.items import Items
from benchgate.evaltasks.custom.postprocess import step_problems
from benchgate.evaltasks.custom.rows import ItemProblem, LimitProblem, is_template
from benchgate.spec.judge import (
    JUDGE_KINDS,
    PAIRWISE_VARIABLES,
    RUBRIC_VARIABLES,
    RubricMetric,
    judge_metric,
    judge_metrics,
)
from scorers.metrics import METRICS, lookup, option_problems
from scorers.metrics.entry import Need

VALIDATION_ROWS = 100
MAX_ROW_PROBLEMS = 5


def problems(definition: Definition, items: Items) -> list[str]:
    found = _spec_problems(definition)
    if found:
        return found
    return _data_problems(definition, items)


def _spec_problems(definition: Definition) -> list[str]:
    spec, problems = definition.spec, []
    if not (spec.dataset or spec.path):
        problems.append(
            "dataset: a custom task needs a dataset: a file (jsonl, json, csv, parquet) or hf:<repo>"
        )
    else:
        problems.extend(f"{definition.where}: {p}" for p in definition.table.problems())
        if definition.table.is_hub and not spec.split:
            problems.append("split: required for a hub dataset (e.g. test, validation, train)")
    problems.extend(_metric_problems(definition))
    problems.extend(f"{field}: {problem}" for field, problem in definition.template_problems().items())
    for i, step in enumerate(spec.postprocess or []):
        problems.extend(f"postprocess[{i}]: {p}" for p in step_problems(step))
    if spec.messages is not None:
        for other in ("prompt", "system", "examples"):
            if getattr(spec, other) is not None:
                problems.append(
                    f"{other}: not with `messages` (the conversation is the prompt, its own system "
                    "message and turns included)"
                )
    if spec.examples and spec.examples.path is None and spec.examples.n is None:
        problems.append("examples.n: how many few-shot rows to take from the dataset (or give examples.path)")
    return problems


def _metric_problems(definition: Definition) -> list[str]:
    spec, problems = definition.spec, []
    known = ", ".join(METRICS)
    if not spec.metrics:
        return [f"metrics: a custom task needs at least one metric (known: {known})"]
    seen: set[str] = set()
    for i, entry in enumerate(spec.metrics):
        if isinstance(entry, dict) and len(entry) != 1:
            problems.append(f"metrics[{i}]: expected a metric name or {{name: {{options}}}}, got {entry}")
            continue
        name, options = (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))
        if name in JUDGE_KINDS and isinstance(entry, dict):
            problems.extend(_judge_problems(definition, i, name, options, seen))
            continue
        if not isinstance(options, dict):
            problems.append(f"metrics[{i}]: options of {name} must be a mapping, e.g. {{{name}: {{...}}}}")
            continue
        if name not in METRICS:
            reported_by = lookup(name)  # a report column (pass@10) of a metric named otherwise (pass@k)
            hint = f" (write {reported_by.name}; k and samples set which pass@N)" if reported_by else ""
            problems.append(f"metrics[{i}]: unknown metric {name!r}{hint} (known: {known})")
            continue
        if name in seen:
            problems.append(f"metrics[{i}]: {name} is listed twice")
        seen.add(name)
        problems.extend(f"metrics[{i}]: {p}" for p in option_problems(name, options))
    chosen = [metric for metric, _ in definition.chosen]
    for need in get_args(Need):
        users = [m.name for m in chosen if need in m.needs]
        if users and getattr(spec, need) is None:
            problems.append(
                f"{need}: {', '.join(users)} needs `{need}`, the field holding each item's {need}"
            )
    needing_target = [m.name for m in chosen if m.needs_reference]
    if needing_target and spec.target is None:
        problems.append(f"target: required by {', '.join(needing_target)} (a field or a template)")
    if any(m.kind == "pass@k" for m in chosen):
        too_big = [k for k in definition.ks() if k > spec.samples]
        if too_big:
            problems.append(f"k: pass@{too_big[0]} needs samples >= {too_big[0]} (samples is {spec.samples})")
    return problems


def _judge_problems(definition: Definition, i: int, kind: str, options: object, seen: set[str]) -> list[str]:
    """A judge metric's own settings and template; its models are checked against `models` by the
    request's validation (benchgate.run.validation), its template's fields against the data below."""
    judge, problems = judge_metric(kind, options)
    where = f"metrics[{i}].{kind}"
    problems = [f"{where}.{p}" if not p.startswith("(") else f"{where}: {p}" for p in problems]
    if judge is None or problems:
        return problems
    if judge.metric_name in seen or judge.metric_name in METRICS:
        problems.append(
            f"{where}.name: {judge.metric_name} is already a metric of this task; name it otherwise"
        )
    seen.add(judge.metric_name)
    try:
        used = definition.judge_variables(judge)
    except jinja2.TemplateSyntaxError as error:
        field = "rubric" if isinstance(judge, RubricMetric) else "prompt"
        return [*problems, f"{where}.{field}: template syntax error at line {error.lineno}: {error.message}"]
    if used & {"reference", "references"} and definition.spec.target is None:
        problems.append(f"target: required by {judge.metric_name} (its template reads the reference)")
    if not isinstance(judge, RubricMetric) and not {"answer_a", "answer_b"} <= used:
        problems.append(f"{where}.prompt: must show both answers (answer_a and answer_b)")
    return problems


def _data_problems(definition: Definition, items: Items) -> list[str]:
    try:
        rows = list(itertools.islice(definition.table.rows(), VALIDATION_ROWS))
    except DatasetError as error:
        return [f"{definition.where}: {error}"]
    good = [row for row in rows if not isinstance(row, BadRow)]
    if not good:
        bad = next((r for r in rows if isinstance(r, BadRow)), None)
        detail = f" ({bad.where}: {bad.message})" if bad else ""
        return [f"{definition.where}: no rows in {definition.table.location}{detail}"]
    fields = sorted(set().union(*good))  # optional fields may be absent from the first row
    problems = _field_problems(definition, fields)
    if problems:
        return problems
    problems = _row_problems(definition, items, rows)
    problems.extend(_shot_problems(definition, items, len(rows)))
    return problems


def _field_problems(definition: Definition, fields: list[str]) -> list[str]:
    """Names the templates and settings use that none of the first rows has."""
    known = ", ".join(fields)
    name_of_table = definition.table.name
    problems = []
    for field, template_source in definition.template_sources().items():
        for name in sorted(definition.undeclared(template_source) - set(fields)):
            problems.append(f"{field}: unknown field {name!r} (fields in {name_of_table}: {known})")
    for i, judge in judge_metrics(definition.spec.metrics):
        kind, field = ("rubric", "rubric") if isinstance(judge, RubricMetric) else ("pairwise", "prompt")
        own = RUBRIC_VARIABLES if kind == "rubric" else PAIRWISE_VARIABLES
        for name in sorted(definition.judge_variables(judge) - set(own) - set(fields)):
            problems.append(
                f"metrics[{i}].{kind}.{field}: unknown variable {name!r} (judge variables: {', '.join(own)}; "
                f"fields in {name_of_table}: {known})"
            )
    for field in ("target", "tests", "choices", "id_field", "messages"):
        name = getattr(definition.spec, field)
        if name is None or (field in ("target", "tests") and is_template(name)):
            continue
        root = name if name in fields else name.split(".")[0]
        if root not in fields:
            problems.append(f"{field}: unknown field {name!r} (fields in {name_of_table}: {known})")
    return problems


def _row_problems(definition: Definition, items: Items, rows: list[Row | BadRow]) -> list[str]:
    problems = []
    for position, row in enumerate(rows, start=1):
        if isinstance(row, BadRow):
            problems.append(f"{definition.where}: {row.where}: {row.message}")
        else:
            item = items.item(row, [])
            if isinstance(item.problem, LimitProblem):  # the template's problem: once is enough, and fast
                return [f"{item.problem.field}: {item.problem} (row {position})"]
            if item.problem:
                problems.append(f"{item.problem.field}: row {position}: {item.problem}")
        if len(problems) >= MAX_ROW_PROBLEMS:
            problems.append(f"(stopped after {MAX_ROW_PROBLEMS} row problems)")
            break
    return problems


def _shot_problems(definition: Definition, items: Items, rows_read: int) -> list[str]:
    shots = definition.spec.examples
    if shots is None:
        return []
    if shots.path is None:
        if rows_read < VALIDATION_ROWS and shots.n is not None and shots.n >= rows_read:
            return [f"examples.n: {shots.n} few-shot rows would leave no item to evaluate ({rows_read} rows)"]
        return []
    try:
        items.turns(items.shot_rows())
    except DatasetError as error:
        return [f"examples.path: {error}"]
    except ItemProblem as problem:
        return [f"examples.path: {problem.describe()}"]
    return []
