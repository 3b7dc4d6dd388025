"""The benchmark request: its models, checked for shape; registry checks live in benchgate.run.validation."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, PositiveFloat, PositiveInt, field_validator

from benchgate.spec.base import StrictModel
from benchgate.spec.gate import GateSpec

# A name in the provider index (benchgate.providers.PROVIDERS), checked by benchgate.run.validation
# so that the spec does not have to list the providers again.
ProviderName = str
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
    judge_only: bool = False  # serves judge metrics only: not evaluated on the tasks itself

    @property
    def model_name(self) -> str:
        return self.model or self.id

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        """scheme://host[:port][/path] and nothing else: providers append their own path, so a query,
        a fragment or credentials here would change which request is sent, and to whom."""
        if value is None:
            return value
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError on a port that is not a number in range
        except ValueError:
            parts = None
        if (
            parts is None
            or parts.scheme not in ("http", "https")
            or not parts.hostname
            or "@" in parts.netloc
            or re.search(r"[\s?#]", value)
        ):
            raise ValueError(
                "must be an http(s) URL scheme://host[:port][/path] without a query, fragment or "
                "user:password@, e.g. http://127.0.0.1:8000/v1"
            )
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
    steps turning a reply into a prediction. `messages` names a field holding a whole conversation
    (instead of a `prompt` template); `epochs` answers each item that many times and scores the mean.
    Judge metrics (`{rubric: {...}}`, `{pairwise: {...}}` under `metrics`) are docs/custom-tasks.md's.
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
    messages: str | None = None
    epochs: PositiveInt = 1

    @property
    def generations_per_item(self) -> int:
        """Answers asked per item: pass@k's samples, or one per epoch (the two never combine)."""
        return self.samples * self.epochs


class BenchmarkRequest(StrictModel):
    name: str = Field(min_length=1)
    models: list[ModelSpec] = Field(min_length=1)
    tasks: list[TaskSpec] = Field(min_length=1)
    gate: GateSpec | None = None
    cache: CachePolicy = "reuse"
    error_budget: float = Field(default=0.05, ge=0, le=1)
    sandbox: Literal["auto", "required"] = "auto"  # what each means: docs/sandbox.md
    execution: Literal["local", "work-pool"] = "local"
    tags: list[str] = Field(default_factory=list)

    def model(self, model_id: str) -> ModelSpec:
        return next(m for m in self.models if m.id == model_id)

    def task(self, task_name: str) -> TaskSpec:
        return next(t for t in self.tasks if t.task == task_name)

    def units(self) -> list[tuple[str, str]]:
        """The (model id, task name) pairs the run evaluates, in the order their subflows start."""
        return [(m.id, t.task) for t in self.tasks for m in self.models if not m.judge_only]


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
                if not isinstance(holder, dict):
                    continue
                value = holder.get(key)
                if isinstance(value, str) and _is_local_relative(value) and (base / value).exists():
                    holder[key] = str((base / value).resolve())
    return data
