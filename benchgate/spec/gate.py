"""The gate's part of the request: rules and webhooks, and the check of a rule's names against what exists."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Literal

from pydantic import Field, HttpUrl, PositiveFloat, PositiveInt, model_validator

from benchgate.spec.base import StrictModel
from benchgate.spec.report import DETAIL_METRICS

BASELINE = "baseline"
# A rule's comparison fields, one per rule kind (benchgate/gate/kinds.py has a class for each). Thresholds
# compare the reported value with a number; references compare with another model and take a margin.
THRESHOLDS = ("at_least", "at_most")
REFERENCES = ("no_worse_than", "better_than")
COMPARISONS = THRESHOLDS + REFERENCES


WEBHOOK_TARGET_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class Webhook(StrictModel):
    """A deployment hook: a URL with its secret named (never written), or a `target` the operator configured.

    Requests through the HTTP API may only name a target (the server's policy holds its URL and secret):
    a caller must choose neither where a signed "pass" goes nor which secret signs it.
    """

    url: HttpUrl | None = None
    target: str | None = Field(default=None, pattern=WEBHOOK_TARGET_PATTERN)
    secret_env: str | None = None
    secret_block: str | None = None
    timeout: PositiveFloat = 10.0
    retries: int = Field(default=4, ge=0, le=20)
    required: bool = True

    @model_validator(mode="after")
    def _url_or_target(self) -> Webhook:
        if (self.url is None) == (self.target is None):
            raise ValueError(
                "give url (with secret_env or secret_block) or target (a webhook configured on the server)"
                f", exactly one (got {'both' if self.url else 'neither'})"
            )
        named = [k for k in ("secret_env", "secret_block") if getattr(self, k) is not None]
        if self.target is not None and named:
            raise ValueError(
                f"{' and '.join(named)}: not with target (the server's configuration of the target "
                "holds its URL and secret)"
            )
        return self


class GateRule(StrictModel):
    """One check on a (model, evaluation task, metric); exactly one comparison per rule.

    ``margin`` is the allowed drop for no_worse_than and the required gain for better_than, in the
    metric's units; ``confidence`` makes a relative rule decide on a paired test of per-item scores.
    """

    model: str
    task: str
    metric: str
    at_least: float | None = None
    at_most: float | None = None
    no_worse_than: str | None = None
    better_than: str | None = None
    margin: float = Field(default=0.0, ge=0)
    confidence: float | None = Field(default=None, gt=0.5, lt=1.0)
    on_insufficient_data: Literal["warn", "fail"] = "warn"
    name: str | None = None

    @model_validator(mode="after")
    def _one_comparison(self) -> GateRule:
        given = [k for k in COMPARISONS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of {', '.join(COMPARISONS)} (got {', '.join(given) or 'none'})"
            )
        if given[0] in THRESHOLDS:
            misplaced = [k for k in ("confidence", "margin") if getattr(self, k)]
            if misplaced:
                raise ValueError(
                    f"{' and '.join(misplaced)}: only for {' / '.join(REFERENCES)} rules "
                    f"(an {given[0]} rule compares the reported value with its threshold)"
                )
        return self

    @property
    def comparison(self) -> str:
        """The one comparison field given: the rule's kind."""
        return next(k for k in COMPARISONS if getattr(self, k) is not None)

    @property
    def threshold(self) -> float | None:
        value = getattr(self, self.comparison)
        return value if self.comparison in THRESHOLDS else None

    @property
    def reference_model(self) -> str | None:
        value = getattr(self, self.comparison)
        return value if self.comparison in REFERENCES else None


class GateSpec(StrictModel):
    baseline: str | None = None
    rules: list[GateRule] = Field(default_factory=list)
    family_wise: Literal["none", "holm"] = "none"
    seed: int = 0
    bootstrap_samples: PositiveInt = 2000
    on_pass: list[Webhook] = Field(default_factory=list)
    on_fail: list[Webhook] = Field(default_factory=list)
    on_inconclusive: list[Webhook] = Field(default_factory=list)

    def unset_baseline_problems(self, prefix: str = "") -> list[str]:
        """Rules comparing with 'baseline' when no baseline is set (``prefix``: where the gate sits)."""
        return [
            _unset_baseline(prefix, i)
            for i, rule in enumerate(self.rules)
            if rule.reference_model == BASELINE and not self.baseline
        ]


def rule_name_problems(
    gate: GateSpec,
    models: Collection[str],
    tasks: Collection[str],
    metrics_of: Callable[[str], Iterable[str]],
    *,
    prefix: str = "",
    known: str = "",
) -> list[str]:
    """Models, evaluation tasks and metrics the gate names but that do not exist (configuration errors).

    The request's validation passes its models and tasks (``prefix`` "gate."), `benchgate gate` those of
    the stored report (``known`` "report "). ``metrics_of(task)`` is only called for known tasks.
    """
    problems = []

    def unknown_model(where: str, name: str) -> str:
        return f"{where}: unknown model {name!r} ({known}models: {_names(models)})"

    if gate.baseline and gate.baseline not in models:
        problems.append(unknown_model(f"{prefix}baseline", gate.baseline))
    for i, rule in enumerate(gate.rules):
        where = f"{prefix}rules[{i}]"
        if rule.model not in models:
            problems.append(unknown_model(f"{where}.model", rule.model))
        reference = rule.reference_model
        if reference == BASELINE and not gate.baseline:
            problems.append(_unset_baseline(prefix, i))
        elif reference and reference != BASELINE and reference not in models:
            problems.append(unknown_model(f"{where}.{rule.comparison}", reference))
        if rule.task not in tasks:
            problems.append(
                f"{where}.task: unknown evaluation task {rule.task!r} ({known}tasks: {_names(tasks)})"
            )
            continue
        allowed = set(metrics_of(rule.task)) | DETAIL_METRICS
        if rule.metric not in allowed:
            problems.append(
                f"{where}.metric: {rule.metric!r} is not reported for {rule.task!r} "
                f"(metrics: {_names(allowed)})"
            )
    return problems


def _unset_baseline(prefix: str, index: int) -> str:
    return f"{prefix}rules[{index}]: compares with 'baseline' but {prefix}baseline is not set"


def _names(values: Iterable[str]) -> str:
    return ", ".join(sorted(values)) or "none"
