"""Gate rule kinds: one class per comparison a rule can make, registered under its GateRule field.

A kind says how its rule reads in words, whether it compares with another model (relative) or with a
threshold, and how it turns the evidence into a verdict. Adding a kind is a class here plus its field in
benchgate/spec/gate.py (a test keeps the two in step).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Literal

from benchgate.spec.gate import BASELINE, GateRule
from benchgate.spec.report import Verdict, format_number


class RuleKind(ABC):
    field: ClassVar[str]  # the GateRule field that selects this kind
    words: ClassVar[str]  # the comparison in words: "at least"
    relative: ClassVar[bool]

    @abstractmethod
    def describe(self, rule: GateRule, baseline: str | None) -> str:
        """The rule in words when it has no name of its own."""


class ThresholdKind(RuleKind):
    """The reported value against a number."""

    relative = False

    def describe(self, rule: GateRule, baseline: str | None) -> str:
        return f"{rule.model} {rule.metric} {self.words} {rule.threshold:g}"

    @abstractmethod
    def holds(self, value: float, threshold: float) -> bool: ...


class AtLeast(ThresholdKind):
    field, words = "at_least", "at least"

    def holds(self, value: float, threshold: float) -> bool:
        return value >= threshold


class AtMost(ThresholdKind):
    field, words = "at_most", "at most"

    def holds(self, value: float, threshold: float) -> bool:
        return value <= threshold


class ReferenceKind(RuleKind):
    """The candidate against a reference model, by point estimates or by a paired test."""

    relative = True
    alternative: ClassVar[Literal["less", "greater"]]  # the paired test's alternative hypothesis

    def describe(self, rule: GateRule, baseline: str | None) -> str:
        level = f" at {rule.confidence:.0%} confidence" if rule.confidence else ""
        reference = reference_label(rule, baseline)
        return f"{rule.model} {rule.metric} {self.words} {reference}{self.margin_words(rule)}{level}"

    @abstractmethod
    def margin_words(self, rule: GateRule) -> str: ...

    @abstractmethod
    def point(self, gain: float, margin: float) -> tuple[bool, str]:
        """From the improvement-oriented difference of the reported values: holds?, and why in words."""

    @abstractmethod
    def tested(
        self, rule: GateRule, significant: bool, insufficient: bool, evidence: str, too_little: str
    ) -> tuple[Verdict, str]:
        """From the paired test: the verdict and its reason."""


class NoWorseThan(ReferenceKind):
    """Guards against a regression: fails only on a significant drop beyond the margin."""

    field, words, alternative = "no_worse_than", "no worse than", "less"

    def margin_words(self, rule: GateRule) -> str:
        return f" (margin {rule.margin:g})"

    def point(self, gain: float, margin: float) -> tuple[bool, str]:
        ok = gain >= -margin
        return ok, f"{'within' if ok else 'beyond'} the allowed margin {format_number(margin)}"

    def tested(
        self, rule: GateRule, significant: bool, insufficient: bool, evidence: str, too_little: str
    ) -> tuple[Verdict, str]:
        margin = format_number(rule.margin)
        if significant:
            return Verdict.FAIL, f"significant drop beyond the margin {margin}: {evidence}"
        if insufficient:
            policy = Verdict.WARN if rule.on_insufficient_data == "warn" else Verdict.FAIL
            return policy, f"{too_little}; {evidence}"
        return Verdict.PASS, f"no significant drop beyond the margin {margin}: {evidence}"


class BetterThan(ReferenceKind):
    """Promotes a model: passes only on a significant gain of more than the margin."""

    field, words, alternative = "better_than", "better than", "greater"

    def margin_words(self, rule: GateRule) -> str:
        return f" by more than {rule.margin:g}" if rule.margin else ""

    def point(self, gain: float, margin: float) -> tuple[bool, str]:
        return gain > margin, f"needs a gain of more than {format_number(margin)}"

    def tested(
        self, rule: GateRule, significant: bool, insufficient: bool, evidence: str, too_little: str
    ) -> tuple[Verdict, str]:
        if significant:
            gain = f" of more than {format_number(rule.margin)}" if rule.margin else ""
            return Verdict.PASS, f"significant gain{gain}: {evidence}"
        # A promotion needs evidence, so too little data cannot turn into a (warn = pass) promotion.
        why = f"{too_little}; " if insufficient else ""
        return Verdict.FAIL, f"gain not significant: {why}{evidence}"


KINDS: dict[str, RuleKind] = {kind.field: kind for kind in (AtLeast(), AtMost(), NoWorseThan(), BetterThan())}


def kind_of(rule: GateRule) -> RuleKind:
    return KINDS[rule.comparison]


def describe_rule(rule: GateRule, baseline: str | None = None) -> str:
    """The rule in words: the JUnit test name and the first column of the verdict table."""
    return rule.name or kind_of(rule).describe(rule, baseline)


def reference_label(rule: GateRule, baseline: str | None) -> str:
    """The reference as a reader knows it: 'baseline <id>' when the rule says 'baseline'."""
    reference = rule.reference_model
    if reference != BASELINE or baseline == BASELINE:
        return str(reference)
    return f"baseline {baseline}"
