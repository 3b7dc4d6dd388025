"""The report's shape: report.json (results, details, the gate's verdicts) and gate.json as typed models.

Consumers parse report.json, so the models serialize to exactly the JSON written before they existed:
the same keys in the same order, ``details``, ``gate`` and ``error`` only when present, numbers as given.
The helpers that make numbers JSON-safe or readable live here too, beside the shapes they serve.
"""

from __future__ import annotations

import json
import math
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from benchgate.errors import EXIT_GATE_FAILED, EXIT_INCONCLUSIVE, EXIT_INVALID, EXIT_OK

# Metrics the gate reads from a pair's details rather than its results row; lower is better for all.
DETAIL_METRICS = frozenset({"cost_usd", "latency_p95_ms", "error_rate"})

ReportStatus = Literal["queued", "running", "completed", "failed"]
WebhookEvent = Literal["on_pass", "on_fail", "on_inconclusive"]
Number = int | float  # counts stay integers in the JSON (e.g. SQuAD's HasAns_total), measures floats


def json_ready(value: Any, digits: int | None = None) -> Any:
    """JSON has no NaN or infinity: non-finite numbers become null, floats rounded to ``digits`` if given."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return value if digits is None else round(value, digits)
    if isinstance(value, dict):
        return {key: json_ready(item, digits) for key, item in value.items()}
    if isinstance(value, list):
        return [json_ready(item, digits) for item in value]
    return value


def format_number(value: float | None, spec: str = ".4g", *, missing: str = "n/a") -> str:
    """A number for people (``format`` spec, 4 significant digits by default); ``missing`` when unknown."""
    if value is None or not math.isfinite(value):
        return missing
    return format(value, spec)


class Verdict(str, Enum):
    """A rule's outcome and the gate's decision. A str subclass (StrEnum needs Python 3.11; we support 3.10),
    so verdicts compare equal to and serialize as their plain names."""

    PASS = "pass"
    FAIL = "fail"
    WARN = "warn"
    INCONCLUSIVE = "inconclusive"

    def __str__(self) -> str:
        return self.value


class DeliveryResult(BaseModel):
    """One webhook delivery as recorded in gate.json (the URL without query string or credentials)."""

    url: str
    delivery_id: str
    status: int | None
    attempts: int
    ok: bool
    error: str | None = None
    required: bool = True
    event: WebhookEvent = "on_pass"


class MovedItem(BaseModel):
    """One item both sides scored: the two scores and short excerpts of what was asked and answered.

    The excerpts are model and dataset text, so untrusted: capped and flattened to one line here,
    escaped by whatever renders them (report.md escapes table and HTML syntax).
    """

    example_id: str
    score: float
    baseline_score: float
    change: float  # score - baseline_score, in the metric's units
    prompt: str = ""
    reference: str = ""
    output: str = ""
    baseline_output: str = ""


class Drilldown(BaseModel):
    """Per-item movement of ``model`` against ``baseline`` on one task and metric, over the paired items.

    A reviewer of a failed rule wants to read the items behind the number: the counts say how broad
    the change is, the items (most moved first, a few each way) what it looks like.
    """

    task: str
    metric: str
    model: str
    baseline: str
    higher_is_better: bool = True
    improved: int = 0
    worse: int = 0
    unchanged: int = 0
    most_worse: list[MovedItem] = Field(default_factory=list)
    most_improved: list[MovedItem] = Field(default_factory=list)

    @property
    def paired(self) -> int:
        return self.improved + self.worse + self.unchanged


class RuleVerdict(BaseModel):
    """One rule's outcome with the evidence a reviewer needs to trust it.

    ``observed`` maps model id -> reported value. For relative rules ``difference`` is candidate minus
    reference in the metric's units and ``ci_low``/``ci_high`` its paired interval at ``ci_level``; for
    absolute rules ``difference`` is value minus threshold and the interval is the metric's own CI.
    ``minimum_detectable`` is the shift beyond the margin the paired test finds with 80% power.
    """

    rule: str
    model: str
    task: str
    metric: str
    comparison: str
    verdict: Verdict
    reason: str
    reference: str | None = None
    threshold: float | None = None
    margin: float | None = None
    confidence: float | None = None
    observed: dict[str, float | None] = Field(default_factory=dict)
    difference: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    ci_level: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    n: int | None = None
    test: str = "point"
    minimum_detectable: float | None = None
    insufficient_data: bool = False
    drilldown: Drilldown | None = None  # failed or warned rules with per-item scores; absent otherwise

    @property
    def relative(self) -> bool:
        """Compared with another model (rather than with a threshold)."""
        return self.reference is not None


class GateDecision(BaseModel):
    """The gate's outcome: fail > inconclusive > pass over the rules (warn counts as pass)."""

    decision: Verdict
    rules: list[RuleVerdict]
    deliveries: list[DeliveryResult] = Field(default_factory=list)

    @classmethod
    def of(cls, rules: list[RuleVerdict]) -> GateDecision:
        outcomes = {rule.verdict for rule in rules}
        for decision in (Verdict.FAIL, Verdict.INCONCLUSIVE):
            if decision in outcomes:
                return cls(decision=decision, rules=rules)
        return cls(decision=Verdict.PASS, rules=rules)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: non-finite numbers (an unknown detectable difference) become null; a rule without
        a drill-down has no ``drilldown`` key, so gate.json keeps the shape it had before there was one."""
        data = json_ready(self.model_dump(mode="json"))
        for rule in data["rules"]:
            if rule["drilldown"] is None:
                del rule["drilldown"]
        return data

    def exit_code(self, *, fail_on_delivery_error: bool = True) -> int:
        """A passed gate whose required on_pass hook failed did not ship: inconclusive, not passed."""
        if self.decision == Verdict.FAIL:
            return EXIT_GATE_FAILED
        if self.decision == Verdict.INCONCLUSIVE:
            return EXIT_INCONCLUSIVE
        if fail_on_delivery_error and any(d.required and not d.ok for d in self.deliveries):
            return EXIT_INCONCLUSIVE
        return EXIT_OK


class MetricStats(BaseModel):
    """A metric's mean over the scored items and its 95% bootstrap interval."""

    value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int = 0


class JudgeDetails(BaseModel):
    """What the judge metrics of one (model, task) cost: beside the candidate's own figures, not in them."""

    models: list[str] = Field(default_factory=list)
    requests: int = 0
    reused: int = 0
    errors: int = 0  # items left out for a failed or unreadable verdict (counted in n_errors too)
    tokens: dict[str, int] = Field(default_factory=dict)
    cost_usd: float | None = None


class TaskDetails(BaseModel):
    """What one (model, evaluation task) pair measured beyond its results row, in report.json's key order."""

    n: int = 0
    n_items: int = 0
    n_errors: int = 0
    error_rate: float = 0.0
    inconclusive: bool = False
    dataset_revision: str | None = None
    metrics: dict[str, MetricStats] = Field(default_factory=dict)
    latency_ms: dict[str, float | None] = Field(default_factory=dict)
    tokens: dict[str, int] = Field(default_factory=dict)
    cost_usd: float | None = None
    requests: int = 0
    reused: int = 0
    higher_is_better: dict[str, bool] = Field(default_factory=dict)
    per_item_kind: dict[str, str] = Field(default_factory=dict)
    scales: dict[str, str] = Field(default_factory=dict)
    breakdown: dict[str, Number] = Field(default_factory=dict)
    failure: str | None = None
    # Later additions, last so the keys before keep their order; None in reports written before them.
    attempts: int | None = None  # HTTP attempts in this run, retries included: retries = attempts - requests
    timeouts: int | None = None  # attempts that timed out (each then retried, or the item failed)
    latency_p95_with_timeouts_ms: float | None = None  # p95 with timed-out attempts at the timeout
    judge: JudgeDetails | None = None  # with judge metrics only: the judges' calls (absent otherwise)

    def detail_value(self, metric: str) -> float | None:
        """One of DETAIL_METRICS as the gate compares it."""
        if metric == "latency_p95_ms":
            return self.latency_ms.get("p95")
        return {"cost_usd": self.cost_usd, "error_rate": self.error_rate}[metric]


class ResultRow(BaseModel):
    """A model's metric values on one evaluation task: ``{"model": id, <metric>: value, ...}``."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, float | None] = Field(init=False)

    model: str

    @property
    def metrics(self) -> dict[str, float | None]:
        return dict(self.model_extra or {})


class TaskSection(BaseModel):
    dataset: str
    results: list[ResultRow] = Field(default_factory=list)


class Report(BaseModel):
    """report.json. Keys other writers add are kept (``extra``), so reading and writing loses nothing."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    benchmark_id: str = Field(validation_alias="benchmarkId", serialization_alias="benchmarkId")
    name: str
    status: ReportStatus
    completed_at: str | None = Field(
        default=None, validation_alias="completedAt", serialization_alias="completedAt"
    )
    report: dict[str, TaskSection] = Field(default_factory=dict)
    details: dict[str, dict[str, TaskDetails]] | None = None
    gate: GateDecision | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON data: ``details`` (absent while queued), ``gate`` and ``error`` only when there is one."""
        data = self.model_dump(mode="json", by_alias=True)
        for key in ("details", "gate", "error"):
            if data[key] is None:
                del data[key]
        for per_model in (data.get("details") or {}).values():
            for details in per_model.values():
                if details["judge"] is None:  # reports without judge metrics keep the shape they had
                    del details["judge"]
        if self.gate is not None:
            data["gate"] = self.gate.to_dict()
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def task_details(self, task: str) -> dict[str, TaskDetails]:
        return (self.details or {}).get(task, {})

    def pair_details(self, task: str, model: str) -> TaskDetails:
        """The pair's details; empty ones when the report has none (a model without results on the task)."""
        return self.task_details(task).get(model) or TaskDetails()

    def row(self, task: str, model: str) -> ResultRow | None:
        section = self.report.get(task)
        return next((r for r in section.results if r.model == model), None) if section else None

    def models(self) -> set[str]:
        """Every model the report knows: with a results row or with details (failed pairs too)."""
        known = {row.model for section in self.report.values() for row in section.results}
        return known | {model for per_task in (self.details or {}).values() for model in per_task}

    def metrics(self, task: str) -> set[str]:
        """Metric names reported for the task, in its results rows or its details."""
        section = self.report.get(task)
        names = {name for row in section.results for name in row.metrics} if section else set()
        return names | {m for d in self.task_details(task).values() for m in d.metrics}

    @property
    def inconclusive(self) -> bool:
        """Some pair erred beyond its error budget."""
        return any(d.inconclusive for per_task in (self.details or {}).values() for d in per_task.values())

    def exit_code(self) -> int:
        """`benchgate run`'s exit code for this report: invalid, then the gate's, then the error budget's."""
        if self.status == "failed":
            return EXIT_INVALID
        if self.gate is not None:
            return self.gate.exit_code()
        return EXIT_INCONCLUSIVE if self.inconclusive else EXIT_OK
