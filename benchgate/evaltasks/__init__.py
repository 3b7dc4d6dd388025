"""The registry of evaluation tasks: built-in ones by name, anything else is a custom task.

`BUILTIN` is the index. Each entry points at the class by "module:Class" and is imported only when
that task is used, so validating a request or starting the CLI does not import rouge-score, the
sandbox and every dataset reader. Adding a built-in task is its module (the EvalTask subclass, with
its `score_offline` and its `example_kind`), one line here, and its test.
"""

from __future__ import annotations

import importlib

from benchgate.evaltasks.base import EvalTask, MetricInfo
from benchgate.spec.request import TaskSpec

BUILTIN: dict[str, str] = {
    "text-summarization": "benchgate.evaltasks.summarization:TextSummarization",
    "question-answering": "benchgate.evaltasks.qa:QuestionAnswering",
    "code-generation": "benchgate.evaltasks.code:CodeGeneration",
}
BUILTIN_TASKS = tuple(BUILTIN)


def builtin_task(name: str) -> type[EvalTask]:
    """The class of a built-in task, imported on first use; KeyError for any other name."""
    module, _, attribute = BUILTIN[name].partition(":")
    task_class: type[EvalTask] = getattr(importlib.import_module(module), attribute)
    return task_class


def make_task(spec: TaskSpec, *, require_isolation: bool = False) -> EvalTask:
    if spec.task in BUILTIN:
        task = builtin_task(spec.task)(spec)
    else:
        from benchgate.evaltasks.custom import CustomTask

        task = CustomTask(spec)
    task.require_isolation = require_isolation
    return task


def task_problems(spec: TaskSpec) -> list[str]:
    """Problems with one task entry, each as 'field: message' relative to the task."""
    if spec.task not in BUILTIN and spec.prompt is None and spec.messages is None:
        return [
            f"task: unknown evaluation task {spec.task!r} (built in: {', '.join(BUILTIN_TASKS)}); "
            "a custom task needs dataset, prompt (or messages), target and metrics"
        ]
    task = make_task(spec)
    problems = task.problems()
    if spec.samples > 1 and not any(m.kind == "pass@k" for m in task.metrics()):
        problems.append("samples: more than one sample per item is only used by pass@k metrics")
    if spec.epochs > 1:
        unaveraged = [m.name for m in task.metrics() if m.kind == "pass@k"]
        if unaveraged:
            problems.append(
                f"epochs: {', '.join(unaveraged)} cannot average over epochs (pass@k draws `samples` "
                "per item instead)"
            )
    if spec.messages is not None and spec.task in BUILTIN:
        problems.append(f"messages: only for custom tasks ({spec.task} builds its own prompts)")
    return problems


def metric_infos(spec: TaskSpec) -> list[MetricInfo]:
    return make_task(spec).metrics()


def metric_names_for(spec: TaskSpec) -> set[str]:
    return {m.name for m in metric_infos(spec)}
