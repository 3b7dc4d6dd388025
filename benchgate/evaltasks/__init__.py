"""The registry of evaluation tasks: built-in ones by name, anything else is a custom task."""

from __future__ import annotations

from benchgate.evaltasks.base import EvalTask, MetricInfo
from benchgate.spec.request import TaskSpec

BUILTIN_TASKS = ("text-summarization", "question-answering", "code-generation")


def make_task(spec: TaskSpec, *, require_isolation: bool = False) -> EvalTask:
    if spec.task == "text-summarization":
        from benchgate.evaltasks.summarization import TextSummarization

        return TextSummarization(spec)
    if spec.task == "question-answering":
        from benchgate.evaltasks.qa import QuestionAnswering

        return QuestionAnswering(spec)
    if spec.task == "code-generation":
        from benchgate.evaltasks.code import CodeGeneration

        task = CodeGeneration(spec)
        task.require_isolation = require_isolation
        return task
    from benchgate.evaltasks.custom import CustomTask

    custom = CustomTask(spec)
    custom.require_isolation = require_isolation  # pass@k runs model-written code too
    return custom


def task_problems(spec: TaskSpec) -> list[str]:
    """Problems with one task entry, each as 'field: message' relative to the task."""
    if spec.task not in BUILTIN_TASKS and spec.prompt is None:
        return [
            f"task: unknown evaluation task {spec.task!r} (built in: {', '.join(BUILTIN_TASKS)}); "
            "a custom task needs dataset, prompt, target and metrics"
        ]
    task = make_task(spec)
    problems = task.problems()
    if spec.samples > 1 and not any(m.kind == "pass@k" for m in task.metrics()):
        problems.append("samples: more than one sample per item is only used by pass@k metrics")
    return problems


def metric_infos(spec: TaskSpec) -> list[MetricInfo]:
    return make_task(spec).metrics()


def metric_names_for(spec: TaskSpec) -> set[str]:
    return {m.name for m in metric_infos(spec)}
