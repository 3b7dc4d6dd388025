"""A request checked against the registries: providers, evaluation tasks, metrics, models named by the gate.

The spec models check shapes; this module checks what only the registries know, so that every
problem is reported with its field before anything is called or written.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from benchgate.errors import RequestError
from benchgate.spec.base import validation_problems
from benchgate.spec.files import read_structured_file
from benchgate.spec.gate import rule_name_problems
from benchgate.spec.request import BenchmarkRequest, ModelSpec, resolve_relative_paths


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
        problems.extend(_provider_problems(i, model.provider))
        problems.extend(_param_problems(i, model))
        if model.provider == "openai-compatible" and not model.base_url:
            problems.append(f"models[{i}].base_url: required for provider 'openai-compatible'")
        if model.provider == "builtin":
            from benchgate.providers.builtin import MODELS

            if model.model_name not in MODELS:
                problems.append(
                    f"models[{i}].model: unknown builtin model {model.model_name!r} "
                    f"(builtin: {', '.join(MODELS)})"
                )
        if model.params.get("temperature") == 0 and any(t.epochs > 1 for t in request.tasks):
            problems.append(
                f"models[{i}].params.temperature: epochs repeat each item to average over varied answers; "
                "temperature 0 would give the same answer every epoch"
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
        problems.extend(_judge_model_problems(request, i))
    if request.gate:
        problems.extend(_gate_problems(request))
    return problems


def _judge_model_problems(request: BenchmarkRequest, index: int) -> list[str]:
    """A judge metric's judge and baseline are models of the request, the baseline one that is evaluated."""
    from benchgate.spec.judge import PairwiseMetric, judge_metrics

    models = {m.id: m for m in request.models}
    problems = []
    for i, judge in judge_metrics(request.tasks[index].metrics):
        where = f"tasks[{index}].metrics[{i}].{'pairwise' if isinstance(judge, PairwiseMetric) else 'rubric'}"
        if judge.judge not in models:
            problems.append(
                f"{where}.judge: no model {judge.judge!r} in `models` (models: {', '.join(models)})"
            )
        if isinstance(judge, PairwiseMetric) and judge.baseline is not None:
            baseline = models.get(judge.baseline)
            if baseline is None or baseline.judge_only:
                problems.append(
                    f"{where}.baseline: no evaluated model {judge.baseline!r} in `models` "
                    f"(models: {', '.join(m for m in models if not models[m].judge_only)})"
                )
    return problems


def _provider_problems(index: int, provider: str) -> list[str]:
    from benchgate.providers import PROVIDERS

    if provider in PROVIDERS:
        return []
    return [f"models[{index}].provider: unknown provider {provider!r} (providers: {', '.join(PROVIDERS)})"]


def _param_problems(index: int, model: ModelSpec) -> list[str]:
    """`params` keys the provider builds itself (model, messages, ...): refused, never overridden."""
    from benchgate.providers import PROVIDERS, provider_class

    if model.provider not in PROVIDERS:
        return []  # reported by _provider_problems
    reserved = provider_class(model.provider).reserved_params
    return [
        f"models[{index}].params.{key}: set by the {model.provider} provider itself, not a parameter "
        f"(reserved: {', '.join(sorted(reserved))})"
        for key in sorted(set(model.params) & reserved)
    ]


def _gate_problems(request: BenchmarkRequest) -> list[str]:
    from benchgate.evaltasks import metric_names_for

    assert request.gate is not None
    task_specs = {t.task: t for t in reversed(request.tasks)}  # a duplicated name: its first spec
    return rule_name_problems(
        request.gate,
        {m.id for m in request.models if not m.judge_only},
        task_specs.keys(),
        lambda task: metric_names_for(task_specs[task]),
        prefix="gate.",
    )


def parse_request(
    data: Any, source: str | None = None, *, check: Callable[[BenchmarkRequest], list[str]] | None = None
) -> BenchmarkRequest:
    """Validate already-decoded data; raises RequestError listing every problem found.

    `check` (the server's policy) runs on the shape-checked request before the registry checks, which
    may read dataset files: a request it refuses is never read from disk or the network.
    """
    if not isinstance(data, dict):
        raise RequestError([f"(top level): expected a mapping, got {type(data).__name__}"], source)
    try:
        request = BenchmarkRequest.model_validate(data)
    except ValidationError as error:
        # The registry's answer too, so one round trip shows every problem of the models' providers.
        models = data.get("models")
        unknown = [
            problem
            for i, model in enumerate(models if isinstance(models, list) else [])
            if isinstance(model, dict) and isinstance(model.get("provider"), str)
            for problem in _provider_problems(i, model["provider"])
        ]
        raise RequestError(validation_problems(error) + unknown, source) from None
    problems = check(request) if check else []
    if problems:
        raise RequestError(problems, source)
    problems = _semantic_problems(request)
    if problems:
        raise RequestError(problems, source)
    return request


def load_request(
    path: str | Path, *, check: Callable[[BenchmarkRequest], list[str]] | None = None
) -> BenchmarkRequest:
    path = Path(path)
    data = resolve_relative_paths(read_structured_file(path), path.resolve().parent)
    return parse_request(data, str(path), check=check)
