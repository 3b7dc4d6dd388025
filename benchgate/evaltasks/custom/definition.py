"""A custom task's settings, read once: its dataset table, its Jinja2 templates and its chosen metrics."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cached_property
from typing import Any

import jinja2
import jinja2.meta
from jinja2.exceptions import SecurityError

from benchgate.datasets.tabular import Row, Table
from benchgate.evaltasks.base import MetricInfo, registry_metric
from benchgate.evaltasks.custom import templating
from benchgate.evaltasks.custom.rows import ItemProblem, LimitProblem, is_template, lookup
from benchgate.spec.judge import (
    PAIRWISE_VARIABLES,
    RUBRIC_VARIABLES,
    JudgeMetric,
    RubricMetric,
    judge_metrics,
)
from benchgate.spec.request import TaskSpec
from scorers.metrics import METRICS, Metric
from scorers.metrics.multiple_choice import LETTERS
from scorers.passk import default_ks


def lettered(choices: Iterable[Any]) -> str:
    """Jinja filter: ['Paris', 'Rome'] -> 'A. Paris\\nB. Rome', the usual multiple-choice layout."""
    return "\n".join(f"{LETTERS[i]}. {choice}" for i, choice in enumerate(choices))


def judge_info(judge: JudgeMetric) -> MetricInfo:
    """Judge metrics are percents: a rubric's score of its scale's range, pairwise the win rate; a
    pass/fail rubric (a scale of two points) is binary, so the gate pairs it with McNemar's test."""
    binary = isinstance(judge, RubricMetric) and judge.bounds[1] - judge.bounds[0] == 1
    return MetricInfo(judge.metric_name, "binary" if binary else "continuous", "percent")


class Definition:
    """What a custom task's request entry says, with the parts every later step shares."""

    def __init__(self, spec: TaskSpec) -> None:
        self.spec = spec
        self.table = Table(
            spec.path or spec.dataset or "", split=spec.split, subset=spec.subset, task_name=spec.task
        )
        self.env = templating.environment({"lettered": lettered})

    @property
    def dataset_name(self) -> str:
        if self.spec.path and self.spec.dataset:
            return self.spec.dataset
        return self.table.name

    @property
    def where(self) -> str:
        """The setting that names the dataset, for messages: `path` when given, else `dataset`."""
        return "path" if self.spec.path else "dataset"

    # metrics ---------------------------------------------------------------------------------
    @cached_property
    def metric_settings(self) -> list[tuple[str, dict[str, Any]]]:
        """(name, options) per `metrics` entry, in request order; malformed entries are left to validation."""
        settings: list[tuple[str, dict[str, Any]]] = []
        for entry in self.spec.metrics or []:
            if isinstance(entry, str):
                settings.append((entry, {}))
            elif len(entry) == 1 and isinstance(next(iter(entry.values())), dict):
                name, options = next(iter(entry.items()))
                settings.append((name, options))
        return settings

    @cached_property
    def chosen(self) -> list[tuple[Metric, dict[str, Any]]]:
        """The registry's entries of the requested metrics with their options; unknown names are left out."""
        return [(METRICS[name], options) for name, options in self.metric_settings if name in METRICS]

    def ks(self) -> list[int]:
        return self.spec.k or default_ks(self.spec.samples)

    def metrics(self) -> list[MetricInfo]:
        registry = [
            registry_metric(column) for metric, _ in self.chosen for column in metric.columns(self.ks())
        ]
        return registry + [judge_info(judge) for judge in self.judges]

    # judge metrics ---------------------------------------------------------------------------
    @cached_property
    def judges(self) -> list[JudgeMetric]:
        """The valid judge metrics (`{rubric: ...}`, `{pairwise: ...}`), in request order."""
        return [metric for _, metric in judge_metrics(self.spec.metrics)]

    def judge_variables(self, judge: JudgeMetric) -> set[str]:
        """The variables a judge's template uses; SyntaxError-like jinja2 errors propagate."""
        return self.undeclared(judge.template)

    @cached_property
    def judge_fields(self) -> set[str]:
        """The dataset fields the judges' templates read: kept on each item for the judge step."""
        fields: set[str] = set()
        for judge in self.judges:
            own = RUBRIC_VARIABLES if isinstance(judge, RubricMetric) else PAIRWISE_VARIABLES
            try:
                fields |= self.judge_variables(judge) - set(own)
            except jinja2.TemplateError:
                continue  # reported by validation
        return fields

    # templates -------------------------------------------------------------------------------
    def template_sources(self) -> dict[str, str]:
        spec, sources = self.spec, {}
        if spec.prompt is not None:
            sources["prompt"] = spec.prompt
        if spec.system is not None:
            sources["system"] = spec.system
        for field in ("target", "tests"):
            value = getattr(spec, field)
            if value is not None and is_template(value):
                sources[field] = value
        return sources

    @cached_property
    def _compiled(self) -> tuple[dict[str, templating.CompiledTemplate], dict[str, str]]:
        templates, problems = {}, {}
        for field, source in self.template_sources().items():
            try:
                templates[field] = templating.compile_template(self.env, source)
            except jinja2.TemplateSyntaxError as error:
                problems[field] = f"template syntax error at line {error.lineno}: {error.message}"
            except templating.RenderLimit as limit:
                problems[field] = f"{LimitProblem.PREFIX} ({limit})"
        return templates, problems

    @property
    def templates(self) -> dict[str, templating.CompiledTemplate]:
        """Compiled templates by setting; only valid ones (template_problems has the others)."""
        return self._compiled[0]

    def template_problems(self) -> dict[str, str]:
        """Why a template setting does not compile (syntax, or a limit while compiling), by setting."""
        return self._compiled[1]

    def undeclared(self, source: str) -> set[str]:
        """The row fields a template uses (its variables that are not Jinja globals)."""
        tree = templating.parse(self.env, source)
        return jinja2.meta.find_undeclared_variables(tree) - set(self.env.globals)

    def render(self, field: str, row: Row) -> str:
        """A template over a row. Messages name the setting and the kind of problem, never a value of
        the row (an attribute or key the template reads may come from the data)."""
        if field in self.template_problems():
            raise ItemProblem(field, self.template_problems()[field])
        try:
            return templating.render(self.templates[field], row)
        except templating.RenderLimit as limit:
            raise LimitProblem(field, f"{LimitProblem.PREFIX} ({limit})") from None
        except SecurityError:
            raise ItemProblem(
                field, "the template uses an attribute or call the sandbox does not allow"
            ) from None
        except jinja2.UndefinedError as error:  # its message names template variables only (templating)
            raise ItemProblem(
                field, f"{error.message} (fields in this row: {', '.join(sorted(row))})"
            ) from None
        except (
            jinja2.TemplateError,
            TypeError,
            ValueError,
            LookupError,
            AttributeError,
            ArithmeticError,
        ) as error:
            raise ItemProblem(field, f"template error ({type(error).__name__})") from None

    def field_or_template(self, field: str, row: Row) -> Any:
        """`target` or `tests` of a row: the named field, or the template rendered and stripped."""
        source = getattr(self.spec, field)
        if is_template(source):
            return self.render(field, row).strip()
        try:
            return lookup(row, source)
        except KeyError:
            raise ItemProblem(
                field, f"no field {source!r} in this row (fields: {', '.join(sorted(row))})"
            ) from None
