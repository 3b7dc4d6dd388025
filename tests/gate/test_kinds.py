"""The rule-kind registry and the spec's comparison fields stay in step (a new kind: a class + a field)."""

from __future__ import annotations

import pytest

from benchgate.gate.kinds import KINDS, AtLeast, AtMost, ReferenceKind, ThresholdKind, describe_rule, kind_of
from benchgate.spec.gate import COMPARISONS, REFERENCES, THRESHOLDS, GateRule

QA = "question-answering"


def test_registry_keys_are_the_spec_comparison_fields() -> None:
    assert tuple(KINDS) == COMPARISONS
    assert set(COMPARISONS) <= set(GateRule.model_fields)
    assert all(kind.field == field for field, kind in KINDS.items())


def test_relative_kinds_are_the_reference_fields() -> None:
    assert {f for f, kind in KINDS.items() if kind.relative} == set(REFERENCES)
    assert {f for f, kind in KINDS.items() if not kind.relative} == set(THRESHOLDS)
    assert all(isinstance(KINDS[f], ReferenceKind) for f in REFERENCES)
    assert all(isinstance(KINDS[f], ThresholdKind) for f in THRESHOLDS)


@pytest.mark.parametrize(
    "comparison,value,words",
    [
        ("at_least", 80, "cand f1-score at least 80"),
        ("at_most", 2.5, "cand f1-score at most 2.5"),
        ("no_worse_than", "baseline", "cand f1-score no worse than baseline base (margin 1)"),
        ("better_than", "base", "cand f1-score better than base by more than 1"),
    ],
)
def test_each_kind_selects_itself_and_describes_the_rule(comparison: str, value: object, words: str) -> None:
    margin = {"margin": 1.0} if comparison in REFERENCES else {}
    rule = GateRule(model="cand", task=QA, metric="f1-score", **{comparison: value}, **margin)
    assert rule.comparison == comparison and kind_of(rule) is KINDS[comparison]
    assert (rule.threshold is None) == (comparison in REFERENCES)
    assert (rule.reference_model is None) == (comparison in THRESHOLDS)
    assert describe_rule(rule, baseline="base") == words
    assert describe_rule(rule.model_copy(update={"name": "mine"})) == "mine"


def test_threshold_kinds_hold_on_the_boundary() -> None:
    assert AtLeast().holds(80.0, 80.0) and not AtLeast().holds(79.9, 80.0)
    assert AtMost().holds(80.0, 80.0) and not AtMost().holds(80.1, 80.0)
