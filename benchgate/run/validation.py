"""A request checked against the registries: providers, evaluation tasks, metrics, models named by the gate.

The spec models check shapes; this module checks what only the registries know, so that every
problem is reported with its field before anything is called or written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from benchgate.errors import RequestError
from benchgate.spec.base import validation_problems
from benchgate.spec.files import read_structured_file
from benchgate.spec.gate import BASELINE
from benchgate.spec.request import BenchmarkRequest, resolve_relative_paths


def _semantic_problems(request: BenchmarkRequest) -> list[str]:
    from benchgate.evaltasks import task_problems

    problems: list[str] = []
    seen: dict[str, int] = {}
    for i, model in enumerate(request.models):
        if model.id in seen:
            problems.append(
                f"models[{i}].id: duplicate model id {model.id!r} (also models[{seen[model.id]}])"
            )
        seen.setdefault(model.id, i)
        if model.provider == "openai-compatible" and not model.base_url:
            problems.append(f"models[{i}].base_url: required for provider 'openai-compatible'")
        if model.provider == "builtin":
            from benchgate.providers.builtin import MODELS

            if model.model_name not in MODELS:
                problems.append(
                    f"models[{i}].model: unknown builtin model {model.model_name!r} "
                    f"(builtin: {', '.join(MODELS)})"
                )
        if model.api_key_env and model.api_key_secret:
            problems.append(f"models[{i}]: give api_key_env or api_key_secret, not both")
    task_names: dict[str, int] = {}
    for i, task in enumerate(request.tasks):
        if task.task in task_names:
            problems.append(f"tasks[{i}].task: duplicate evaluation task {task.task!r}")
        task_names.setdefault(task.task, i)
        if task.path and "://" not in task.path and not Path(task.path).exists():
            problems.append(f"tasks[{i}].path: file not found: {task.path}")
            continue
        problems.extend(f"tasks[{i}].{p}" for p in task_problems(task))
    if request.gate:
        problems.extend(_gate_problems(request))
    return problems


def _gate_problems(request: BenchmarkRequest) -> list[str]:
    from benchgate.evaltasks import metric_names_for

    assert request.gate is not None
    model_ids = {m.id for m in request.models}
    problems = []
    if request.gate.baseline and request.gate.baseline not in model_ids:
        problems.append(f"gate.baseline: unknown model {request.gate.baseline!r}")
    for i, rule in enumerate(request.gate.rules):
        where = f"gate.rules[{i}]"
        if rule.model not in model_ids:
            problems.append(
                f"{where}.model: unknown model {rule.model!r} (models: {', '.join(sorted(model_ids))})"
            )
        reference = rule.reference_model
        if reference == BASELINE and not request.gate.baseline:
            problems.append(f"{where}: compares with 'baseline' but gate.baseline is not set")
        elif reference and reference != BASELINE and reference not in model_ids:
            key = "no_worse_than" if rule.no_worse_than else "better_than"
            problems.append(f"{where}.{key}: unknown model {reference!r}")
        task_specs = [t for t in request.tasks if t.task == rule.task]
        if not task_specs:
            names = ", ".join(t.task for t in request.tasks)
            problems.append(f"{where}.task: unknown evaluation task {rule.task!r} (tasks: {names})")
            continue
        allowed = metric_names_for(task_specs[0]) | DETAIL_METRICS
        if rule.metric not in allowed:
            problems.append(
                f"{where}.metric: {rule.metric!r} is not reported for {rule.task!r} "
                f"(metrics: {', '.join(sorted(allowed))})"
            )
    return problems


DETAIL_METRICS = frozenset({"cost_usd", "latency_p95_ms", "error_rate"})


def parse_request(data: Any, source: str | None = None) -> BenchmarkRequest:
    """Validate already-decoded data; raises RequestError listing every problem found."""
    if not isinstance(data, dict):
        raise RequestError([f"(top level): expected a mapping, got {type(data).__name__}"], source)
    try:
        request = BenchmarkRequest.model_validate(data)
    except ValidationError as error:
        raise RequestError(validation_problems(error), source) from None
    problems = _semantic_problems(request)
    if problems:
        raise RequestError(problems, source)
    return request


def load_request(path: str | Path) -> BenchmarkRequest:
    path = Path(path)
    data = resolve_relative_paths(read_structured_file(path), path.resolve().parent)
    return parse_request(data, str(path))
