"""What a model will be asked, without asking it: the first items of a task as rendered, and the registry.

`benchgate preview` shows exactly the messages the engine sends (system, few-shot turns, prompt) and the
references the scorer compares against, so a template mistake is seen before a single paid call.
"""

from __future__ import annotations

import itertools

from benchgate.evaltasks import BUILTIN_TASKS, make_task
from benchgate.spec.example import Example
from benchgate.spec.request import TaskSpec
from scorers.metrics import METRICS

RULE = "─" * 72


def first_examples(spec: TaskSpec, n: int) -> tuple[str, list[Example]]:
    """The dataset's name and the first `n` items the task evaluates (after `limit` sampling)."""
    loaded = make_task(spec).load()
    return loaded.name, list(itertools.islice(loaded.examples, n))


def render_examples(task: str, dataset: str, examples: list[Example]) -> str:
    lines = []
    for number, example in enumerate(examples, start=1):
        heading = f"{task} ({dataset}) · item {number} of {len(examples)} · id {example.example_id}"
        lines.append(f"{RULE}\n{heading}")
        if "problem" in example.fields:
            lines.append(f"!! not scored: {example.fields['problem']}")
        for message in example.messages:
            lines.append(f"[{message['role']}]\n{message['content']}")
        if "choices" in example.fields:
            lines.append(f"[choices]\n{example.fields['choices']}")
        references = example.references
        label = "target" if len(references) == 1 else f"targets ({len(references)})"
        lines.append(f"[{label}]\n" + ("\n".join(f"- {r}" for r in references) if references else "(none)"))
    return "\n".join(lines)


def render_catalog() -> str:
    """Built-in tasks and every metric of the registry, for `benchgate tasks`."""
    lines = ["Built-in evaluation tasks (any other name with a `prompt` is a custom task):"]
    for name in BUILTIN_TASKS:
        task = make_task(TaskSpec(task=name))
        metrics = ", ".join(m.name for m in task.metrics())
        lines.append(f"  {name:<20} dataset {task.dataset_name:<14} metrics {metrics}")
    lines.append("\nMetrics (custom tasks list them under `metrics`; options as {name: {option: value}}):")
    for metric in METRICS.values():
        better = "higher" if metric.higher_is_better else "lower"
        lines.append(f"  {metric.name:<16} {metric.kind:<10} {metric.scale:<8} {better} is better")
        lines.append(f"      {metric.summary}")
        for option, meaning in metric.options.items():
            lines.append(f"      option {option}: {meaning}")
        for need in metric.needs:
            lines.append(f"      needs the task's `{need}` field")
        lines.append(f"      e.g. {metric.example}")
    return "\n".join(lines)
