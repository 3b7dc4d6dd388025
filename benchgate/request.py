"""The benchmark request (DESIGN.md §3): parsing, validation, and errors that name the field."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, PositiveFloat, PositiveInt, ValidationError, field_validator

from benchgate.errors import RequestError
from benchgate.gate_models import BASELINE, GateSpec
from benchgate.strict import StrictModel

ProviderName = Literal["openai", "anthropic", "gemini", "openai-compatible", "builtin"]
CachePolicy = Literal["reuse", "refresh", "off"]
_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}$"


class RateLimit(StrictModel):
    requests_per_minute: PositiveFloat | None = None
    tokens_per_minute: PositiveFloat | None = None


class Price(StrictModel):
    """US dollars per million tokens."""

    input_per_mtok: float = Field(default=0.0, ge=0)
    output_per_mtok: float = Field(default=0.0, ge=0)


class ModelSpec(StrictModel):
    id: str = Field(pattern=_ID_PATTERN)
    provider: ProviderName
    model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    api_key_secret: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    concurrency: PositiveInt = 8
    rate_limit: RateLimit | None = None
    price: Price | None = None
    timeout: PositiveFloat = 120.0
    max_attempts: PositiveInt = 8
    retry_budget_seconds: PositiveFloat = 600.0
    organization: str | None = None  # openai: OpenAI-Organization header
    project: str | None = None  # openai: OpenAI-Project header

    @property
    def model_name(self) -> str:
        return self.model or self.id

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http(s) URL, e.g. http://127.0.0.1:8000/v1")
        return value


class FewShot(StrictModel):
    """Few-shot examples for a custom task, taken deterministically (seeded by the task's `seed`).

    Without `path`, `n` rows come from the dataset itself and are left out of the evaluation; with
    `path` (a second file), its first `n` rows, or all of them.
    """

    path: str | None = None
    n: PositiveInt | None = None


class TaskSpec(StrictModel):
    """An evaluation task: a built-in one by name, or a custom one (template + metrics).

    The custom-task settings (docs/custom-tasks.md): `metrics` items are names or {name: {options}};
    `choices` and `tests` name the fields choice-accuracy and pass@k read; `postprocess` lists the
    steps turning a reply into a prediction.
    """

    task: str = Field(pattern=_ID_PATTERN)
    dataset: str | None = None
    path: str | None = None
    split: str | None = None
    subset: str | None = None
    limit: PositiveInt | None = None
    seed: int = 0
    samples: PositiveInt = 1
    k: list[PositiveInt] | None = None
    prompt: str | None = None
    system: str | None = None
    target: str | None = None
    metrics: list[str | dict[str, Any]] | None = None
    id_field: str | None = None
    shard_size: PositiveInt | None = None
    examples: FewShot | None = None
    choices: str | None = None
    tests: str | None = None
    postprocess: list[str | dict[str, Any]] | None = None


class BenchmarkRequest(StrictModel):
    name: str = Field(min_length=1)
    models: list[ModelSpec] = Field(min_length=1)
    tasks: list[TaskSpec] = Field(min_length=1)
    gate: GateSpec | None = None
    cache: CachePolicy = "reuse"
    error_budget: float = Field(default=0.05, ge=0, le=1)
    sandbox: Literal["auto", "required", "off"] = "auto"
    execution: Literal["local", "work-pool"] = "local"
    tags: list[str] = Field(default_factory=list)

    def model(self, model_id: str) -> ModelSpec:
        return next(m for m in self.models if m.id == model_id)

    def task(self, task_name: str) -> TaskSpec:
        return next(t for t in self.tasks if t.task == task_name)


def field_path(loc: tuple[Any, ...]) -> str:
    """('models', 2, 'base_url') -> 'models[2].base_url'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not str(part).startswith(("function-", "literal[", "tagged-union")):
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def validation_problems(error: ValidationError, format_name: str = "request") -> list[str]:
    """pydantic's errors as 'field.path: message' lines a user can act on."""
    problems = []
    for item in error.errors(include_url=False):
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = f"unknown key (not part of the {format_name} format)"
        problems.append(f"{field_path(item['loc'])}: {message}")
    return problems


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


def read_structured_file(path: str | Path) -> Any:
    """YAML or JSON (JSON is YAML, but JSON errors read better from json)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RequestError([f"(file): cannot read {path}: {error}"], str(path)) from None
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except json.JSONDecodeError as error:
        raise RequestError(
            [f"(file): invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}"], str(path)
        ) from None
    except yaml.YAMLError as error:
        raise RequestError([f"(file): invalid YAML: {error}"], str(path)) from None


def _is_local_relative(value: str) -> bool:
    return "://" not in value and not value.startswith("hf:") and not Path(value).is_absolute()


def resolve_relative_paths(data: Any, base: Path) -> Any:
    """Dataset files named relative to a request file are relative to that file, not to the cwd."""
    if isinstance(data, dict) and isinstance(data.get("tasks"), list):
        for task in data["tasks"]:
            if not isinstance(task, dict):
                continue
            shots = task.get("examples")
            for holder, key in ((task, "path"), (task, "dataset"), (shots, "path")):
                value = holder.get(key) if isinstance(holder, dict) else None
                if isinstance(value, str) and _is_local_relative(value) and (base / value).exists():
                    holder[key] = str((base / value).resolve())
    return data


def load_request(path: str | Path) -> BenchmarkRequest:
    path = Path(path)
    data = resolve_relative_paths(read_structured_file(path), path.resolve().parent)
    return parse_request(data, str(path))
