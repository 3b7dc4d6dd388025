"""`benchgate judge-check`: how well a rubric judge agrees with human labels, before a gate trusts it.

A team labels a few answers by hand on the rubric's scale; the judge grades the same answers with the
request's own rubric, scale and judge model, through the same engine and cache as a run (partition
generations/model=<judge>/task=<task>~judge, so a rerun, or a run that already asked, costs no call).
Agreement is reported with 95% percentile-bootstrap intervals over items: exact agreement and the mean
absolute difference on every scale, Cohen's kappa and the confusion counts on a two-point (pass/fail)
scale, Spearman's rho on wider ones, where exact agreement alone undersells a judge that ranks well.
"""

from __future__ import annotations

import logging
import math
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jinja2.meta
import numpy as np
from scipy.stats import rankdata

from benchgate.datasets.tabular import BadRow, Table
from benchgate.errors import DatasetError, RequestError
from benchgate.evaltasks.custom import templating
from benchgate.judges.calls import JudgeCalls, Template, base_variables
from benchgate.spec.example import Example
from benchgate.spec.judge import PairwiseMetric, RubricMetric, judge_metrics
from benchgate.spec.report import format_number, json_ready
from benchgate.spec.request import BenchmarkRequest
from benchgate.store import Store

log = logging.getLogger(__name__)
RESAMPLES = 2000
CONFIDENCE = 0.95
MAX_PROBLEMS = 20
ITEM_FIELDS = ("answer", "label", "question", "reference")
"""Columns with a fixed meaning; any other column is a row field a custom rubric may name."""
COLUMN_OF = {"answer": "answer", "reference": "reference", "references": "reference"}
COLUMN_OF |= {"input": "question", "conversation": "question"}
"""Which column feeds each judge variable the rubric uses (scale_low and scale_high come from the scale)."""
_WHOLE = re.compile(r"\s*-?\d+\s*")
_BLOCK_ELEMENTS = 1 << 20

Statistic = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""Human and judge scores, one resample per row, to one value per row (nan where undefined)."""


@dataclass(frozen=True)
class LabelledItem:
    row: int
    example: Example
    answer: str
    label: int


def rubric_of(request: BenchmarkRequest, task: str | None, metric: str | None) -> tuple[str, RubricMetric]:
    """The task and rubric metric to calibrate: named, or the only candidate; RequestError otherwise."""
    with_rubric = [t.task for t in request.tasks if _rubrics(request, t.task)]
    if task is None:
        if len(with_rubric) != 1:
            names = ", ".join(with_rubric) or "none"
            raise RequestError(
                [f"--task: name the task whose rubric to check (tasks with a rubric: {names})"]
            )
        task = with_rubric[0]
    if task not in [t.task for t in request.tasks]:
        known = ", ".join(t.task for t in request.tasks)
        raise RequestError([f"--task: unknown evaluation task {task!r} (tasks: {known})"])
    rubrics = _rubrics(request, task)
    names = ", ".join(rubrics) or "none"
    if metric is None:
        if len(rubrics) != 1:
            raise RequestError(
                [f"--metric: name the rubric metric to check (rubric metrics of {task}: {names})"]
            )
        metric = next(iter(rubrics))
    if metric not in rubrics:
        pairwise = any(
            isinstance(m, PairwiseMetric) and m.metric_name == metric
            for _, m in judge_metrics(request.task(task).metrics)
        )
        why = "a pairwise metric has no per-answer scale to label" if pairwise else "no such rubric metric"
        raise RequestError([f"--metric: {metric!r}: {why} (rubric metrics of {task}: {names})"])
    return task, rubrics[metric]


def _rubrics(request: BenchmarkRequest, task: str) -> dict[str, RubricMetric]:
    metrics = judge_metrics(request.task(task).metrics)
    return {m.metric_name: m for _, m in metrics if isinstance(m, RubricMetric)}


def read_labels(location: str, rubric: RubricMetric) -> list[LabelledItem]:
    """The labelled items, every problem found before any judge is called (DatasetError, exit 2)."""
    table = Table(location)
    if table.problems():
        raise DatasetError(f"--labels: {table.problems()[0]}")
    rows = list(table.rows())
    columns = sorted({name for row in rows if not isinstance(row, BadRow) for name in row})
    needed = {"answer", "label"} | {COLUMN_OF.get(v, v) for v in _variables(rubric.template)}
    needed -= {"scale_low", "scale_high"}
    absent = sorted(needed - set(columns))
    problems = [f"{name}: no such column (columns: {', '.join(columns) or 'none'})" for name in absent]
    if not rows:
        problems.append("the file has no items")
    items = []
    for number, row in enumerate(rows, start=1):
        if isinstance(row, BadRow):
            problems.append(f"{row.where}: {row.message}")
            continue
        present = sorted(needed.intersection(columns) - {"label"})  # the label has its own checks
        missing = [name for name in present if row.get(name) in (None, "")]
        problems.extend(f"{name}: row {number}: no value" for name in missing)
        if "label" in absent:
            continue  # reported once, as a column
        label = _label(row.get("label"), rubric.bounds)
        if isinstance(label, str):
            problems.append(f"label: row {number}: {label}")
        elif not missing and not absent:
            items.append(_item(number, row, label))
    if problems:
        lines = problems[:MAX_PROBLEMS] + (
            ["(more problems not shown)"] if len(problems) > MAX_PROBLEMS else []
        )
        raise DatasetError(f"{location}: invalid labels\n" + "\n".join(f"  - {p}" for p in lines))
    return items


def _variables(template: str) -> set[str]:
    env = templating.environment({})
    return jinja2.meta.find_undeclared_variables(templating.parse(env, template)) - set(env.globals)


def _label(value: Any, bounds: tuple[int, int]) -> int | str:
    """The label as a score on the scale, or what is wrong with it; pass/fail are two-point ends."""
    low, high = bounds
    if value in (None, ""):
        return "no value"
    if high - low == 1 and (isinstance(value, bool) or str(value).strip().lower() in ("pass", "fail")):
        return high if value is True or str(value).strip().lower() == "pass" else low
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and _WHOLE.fullmatch(value):
        value = int(value)
    ends = " (or pass/fail)" if high - low == 1 else ""
    if not isinstance(value, int) or isinstance(value, bool):
        return f"{str(value)[:40]!r} is not a whole number on the scale [{low}, {high}]{ends}"
    if not low <= value <= high:
        return f"{value} is outside the scale [{low}, {high}]{ends}"
    return value


def _item(number: int, row: dict[str, Any], label: int) -> LabelledItem:
    text = {
        name: "" if row.get(name) is None else str(row[name]) for name in ("answer", "question", "reference")
    }
    messages = [{"role": "user", "content": text["question"]}] if text["question"] else []
    others = {name: value for name, value in row.items() if name not in ITEM_FIELDS}
    example = Example(
        f"row{number}", messages, [text["reference"]] if text["reference"] else [], {"judge_inputs": others}
    )
    return LabelledItem(number, example, text["answer"], label)


async def calibrate(
    request: BenchmarkRequest, labels: str, store: Store, *, task: str | None, metric: str | None
) -> dict[str, Any]:
    """The judge's agreement with the labels as one JSON-ready object (undefined figures are None)."""
    task, rubric = rubric_of(request, task, metric)
    items = read_labels(labels, rubric)
    low, high = rubric.bounds
    template = Template(rubric.template)
    prompts = {}
    for item in items:
        variables = {
            **base_variables(item.example),
            "answer": item.answer,
            "scale_low": low,
            "scale_high": high,
        }
        try:
            prompts[item.example.example_id] = template.render(variables)
        except ValueError as error:
            raise DatasetError(f"{labels}: row {item.row}: {error}") from None
    calls = JudgeCalls(request, task, Table(labels).name, "judge-check-" + secrets.token_hex(6), store)
    try:
        verdicts = await calls.ask(rubric.judge, prompts)
    finally:
        await calls.aclose()
    human, judged = [], []
    for item in items:
        row = verdicts[item.example.example_id]
        try:
            if row["error"] is not None:
                raise ValueError(row["error"])
            percent = rubric.parse(row["output"] or "")
        except ValueError as error:
            log.warning("%s: row %s: judge error (%s): %s", labels, item.row, rubric.metric_name, error)
            continue
        human.append(item.label)
        judged.append(low + round(percent * (high - low) / 100))
    stats = calls.stats[rubric.judge]
    result: dict[str, Any] = {
        "task": task,
        "metric": rubric.metric_name,
        "judge": rubric.judge,
        "scale": [low, high],
        "n": len(items),
        "judge_errors": len(items) - len(human),
        "requests": stats.requests,
        "reused": stats.reused,
        **agreement(np.array(human, dtype=float), np.array(judged, dtype=float), (low, high)),
    }
    return json_ready(result)  # nan (a statistic undefined on these labels) as null


def agreement(human: np.ndarray, judge: np.ndarray, bounds: tuple[int, int]) -> dict[str, Any]:
    """Each statistic with its interval over the same item resamples; kappa on two points, rho on more."""
    low, high = bounds
    chosen: dict[str, Statistic] = {"accuracy": _accuracy}
    if high - low == 1:
        chosen["kappa"] = _kappa
    else:
        chosen["spearman"] = _spearman
    chosen["mean_abs_diff"] = _mean_abs_diff
    intervals = _bootstrap(human, judge, list(chosen.values()))
    figures: dict[str, Any] = {}
    for (name, statistic), (ci_low, ci_high) in zip(chosen.items(), intervals, strict=True):
        value = float(statistic(human[None, :], judge[None, :])[0]) if len(human) else math.nan
        figures[name] = {"value": value, "ci_low": ci_low, "ci_high": ci_high}
    if high - low == 1:
        figures["confusion"] = {
            f"human_{h}_judge_{j}": int(np.sum((human == hv) & (judge == jv)))
            for h, hv in (("pass", high), ("fail", low))
            for j, jv in (("pass", high), ("fail", low))
        }
    return figures


def _accuracy(human: np.ndarray, judge: np.ndarray) -> np.ndarray:
    return np.asarray((human == judge).mean(axis=1))


def _mean_abs_diff(human: np.ndarray, judge: np.ndarray) -> np.ndarray:
    return np.asarray(np.abs(human - judge).mean(axis=1))


def _kappa(human: np.ndarray, judge: np.ndarray) -> np.ndarray:
    """Cohen's kappa of two-point scores (the higher point is 'pass'); nan when chance agreement is 1."""
    top = np.maximum(human.max(axis=1, keepdims=True), judge.max(axis=1, keepdims=True))
    h, j = (human == top), (judge == top)
    observed = (h == j).mean(axis=1)
    p_h, p_j = h.mean(axis=1), j.mean(axis=1)
    chance = p_h * p_j + (1 - p_h) * (1 - p_j)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(chance < 1, (observed - chance) / (1 - chance), np.nan)


def _spearman(human: np.ndarray, judge: np.ndarray) -> np.ndarray:
    """Spearman's rho (Pearson on average ranks, as scipy.stats.spearmanr); nan if either side is constant."""
    rh, rj = rankdata(human, axis=1), rankdata(judge, axis=1)
    rh -= rh.mean(axis=1, keepdims=True)
    rj -= rj.mean(axis=1, keepdims=True)
    denominator = np.sqrt((rh**2).sum(axis=1) * (rj**2).sum(axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, (rh * rj).sum(axis=1) / denominator, np.nan)


def _bootstrap(
    human: np.ndarray, judge: np.ndarray, statistics: list[Statistic]
) -> list[tuple[float, float]]:
    """Percentile intervals from items resampled with replacement (seeded, so reruns agree); resamples
    where a statistic is undefined (kappa or rho of a constant resample) are left out of its interval."""
    n = len(human)
    if n == 0:
        return [(math.nan, math.nan)] * len(statistics)
    rng = np.random.default_rng(0)
    values = np.empty((len(statistics), RESAMPLES))
    block = max(1, _BLOCK_ELEMENTS // n)
    for start in range(0, RESAMPLES, block):
        stop = min(start + block, RESAMPLES)
        index = rng.integers(0, n, size=(stop - start, n))
        for s, statistic in enumerate(statistics):
            values[s, start:stop] = statistic(human[index], judge[index])
    alpha = (1 - CONFIDENCE) / 2
    intervals = []
    for row in values:
        finite = row[np.isfinite(row)]
        if len(finite) == 0:
            intervals.append((math.nan, math.nan))
        else:
            ci_low, ci_high = np.quantile(finite, [alpha, 1 - alpha])
            intervals.append((float(ci_low), float(ci_high)))
    return intervals


def render_calibration(result: dict[str, Any]) -> str:
    """The figures for people: a line on the items and calls, a table of statistics, the confusion counts."""
    low, high = result["scale"]
    lines = [
        f"{result['task']} · {result['metric']} (judge {result['judge']}, scale {low}-{high})",
        f"  items {result['n']}, judge errors {result['judge_errors']}; "
        f"judge calls {result['requests']}, reused {result['reused']}",
        f"  {'statistic':<16}{'value':>10}   95% interval",
    ]
    for name in ("accuracy", "kappa", "spearman", "mean_abs_diff"):
        if name in result:
            figure = result[name]
            interval = f"[{format_number(figure['ci_low'])}, {format_number(figure['ci_high'])}]"
            lines.append(f"  {name:<16}{format_number(figure['value']):>10}   {interval}")
    confusion = result.get("confusion")
    if confusion:
        lines.append(f"  {'':<16}{'judge pass':>12}{'judge fail':>12}")
        for h in ("pass", "fail"):
            judged_pass, judged_fail = confusion[f"human_{h}_judge_pass"], confusion[f"human_{h}_judge_fail"]
            lines.append(f"  {'human ' + h:<16}{judged_pass:>12}{judged_fail:>12}")
    return "\n".join(lines)
