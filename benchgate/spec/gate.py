"""The gate's part of the request: rules and webhooks (DESIGN.md §3, §6)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, HttpUrl, PositiveFloat, PositiveInt, model_validator

from benchgate.spec.base import StrictModel

BASELINE = "baseline"


class Webhook(StrictModel):
    """A deployment hook; the secret is named, never written in the request."""

    url: HttpUrl
    secret_env: str | None = None
    secret_block: str | None = None
    timeout: PositiveFloat = 10.0
    retries: int = Field(default=4, ge=0, le=20)
    required: bool = True


class GateRule(StrictModel):
    """One check on a (model, evaluation task, metric); exactly one comparison per rule.

    ``margin`` is the allowed drop for no_worse_than and the required gain for better_than, in the
    metric's units; ``confidence`` makes a relative rule decide on a paired test (benchgate/gating.py).
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
        given = [
            k for k in ("at_least", "at_most", "no_worse_than", "better_than") if getattr(self, k) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of at_least, at_most, no_worse_than, better_than "
                f"(got {', '.join(given) or 'none'})"
            )
        if given[0] in ("at_least", "at_most"):
            misplaced = [k for k in ("confidence", "margin") if getattr(self, k)]
            if misplaced:
                raise ValueError(
                    f"{' and '.join(misplaced)}: only for no_worse_than / better_than rules "
                    f"(an {given[0]} rule compares the reported value with its threshold)"
                )
        return self

    @property
    def reference_model(self) -> str | None:
        return self.no_worse_than or self.better_than


class GateSpec(StrictModel):
    baseline: str | None = None
    rules: list[GateRule] = Field(default_factory=list)
    family_wise: Literal["none", "holm"] = "none"
    seed: int = 0
    bootstrap_samples: PositiveInt = 2000
    on_pass: list[Webhook] = Field(default_factory=list)
    on_fail: list[Webhook] = Field(default_factory=list)
    on_inconclusive: list[Webhook] = Field(default_factory=list)
