"""The metric registry shared by the built-in and the custom evaluation tasks.

One entry per metric name the report can carry: its kind (how the gate pairs items: binary, continuous,
pass@k), its scale (ROUGE as a fraction, everything else in percent, as DESIGN.md §4 says), its
direction, the options it takes in a request, and a worked example (shown by `benchgate tasks` and in
docs/custom-tasks.md, and checked by tests/scorers/test_metrics.py).

Item scorers take the post-processed prediction and the item's references (several allowed: the best
one counts) and return the item's value in report scale. They raise `ReferenceProblem` when the
*reference* cannot be scored (not a number, not JSON, not one of the choices): that is a data problem
of the item, never a wrong answer of the model.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from scorers.passk import per_problem_pass_at_k
from scorers.rouge import score_summaries
from scorers.sandbox import check_programs
from scorers.squad import exact_match, f1, normalize_answer

Kind = Literal["binary", "continuous", "pass@k"]
Scale = Literal["fraction", "percent"]
PASS_AT_K = "pass@k"
ROUGE = ("rouge-1", "rouge-2", "rouge-l")


class ReferenceProblem(ValueError):
    """The item's reference (not the prediction) makes the metric inapplicable to this item."""


@dataclass(frozen=True)
class Metric:
    name: str
    kind: Kind
    scale: Scale
    summary: str
    example: str
    higher_is_better: bool = True
    needs_reference: bool = True
    options: Mapping[str, str] = field(default_factory=dict)  # option name -> what it means
    required: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()  # task settings the metric relies on: "choices", "tests"


def _m(name: str, kind: Kind, scale: Scale, summary: str, example: str, **extra: Any) -> Metric:
    return Metric(name, kind, scale, summary, example, **extra)


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        _m(
            "exact-match",
            "binary",
            "percent",
            "100 if the prediction equals a reference after SQuAD normalization (case, punctuation, "
            "articles a/an/the, whitespace), else 0",
            "prediction 'The Eiffel Tower!' vs reference 'eiffel tower' -> 100",
        ),
        _m(
            "f1-score",
            "continuous",
            "percent",
            "SQuAD token-overlap F1 (after the same normalization), best over the references",
            "prediction 'the red car' vs reference 'red sports car' -> 80 (precision 2/2, recall 2/3)",
        ),
        _m(
            "rouge-1",
            "continuous",
            "fraction",
            "ROUGE-1 F-measure (rouge-score, Porter stemmer), best over the references",
            "prediction 'the cat sat' vs reference 'the cat sat down' -> 0.857",
        ),
        _m(
            "rouge-2",
            "continuous",
            "fraction",
            "ROUGE-2 (bigram) F-measure, best over the references",
            "prediction 'the cat sat' vs reference 'the cat sat down' -> 0.8",
        ),
        _m(
            "rouge-l",
            "continuous",
            "fraction",
            "ROUGE-Lsum F-measure (summary-level LCS, one sentence per line), best over the references",
            "prediction 'the cat sat' vs reference 'the cat sat down' -> 0.857",
        ),
        _m(
            "contains",
            "binary",
            "percent",
            "100 if a reference appears in the prediction as whole words, after SQuAD normalization",
            "prediction 'Your order #123 ships Monday.' vs reference 'ships monday' -> 100",
        ),
        _m(
            "regex-match",
            "binary",
            "percent",
            "100 if the regular expression `pattern` is found in the prediction (Python re.search)",
            "pattern '^Ticket \\d+' and prediction 'Ticket 42 opened' -> 100",
            needs_reference=False,
            options={"pattern": "Python regular expression searched in the prediction (required)"},
            required=("pattern",),
        ),
        _m(
            "numeric-match",
            "binary",
            "percent",
            "100 if the last number in the prediction is within `tolerance` of a numeric reference",
            "prediction 'That comes to $1,234.50 in total' vs reference '1234.5' -> 100",
            options={"tolerance": "largest absolute difference that still matches (default 1e-6)"},
        ),
        _m(
            "json-valid",
            "binary",
            "percent",
            "100 if the prediction parses as JSON",
            "prediction '{\"refund\": true}' -> 100; prediction '{refund: true}' -> 0",
            needs_reference=False,
        ),
        _m(
            "json-match",
            "binary",
            "percent",
            "100 if the prediction parses as JSON equal to a reference's JSON (key order and number "
            "spelling ignored; true is not 1)",
            'prediction \'{"b": 2.0, "a": [1]}\' vs reference \'{"a": [1], "b": 2}\' -> 100',
        ),
        _m(
            "choice-accuracy",
            "binary",
            "percent",
            "100 if the prediction picks the correct choice, by letter ('B', '(B)', 'B) ...', "
            "'Answer: B') or by the choice's text",
            "choices ['Paris', 'Rome'], target 'Rome': prediction 'B' -> 100, 'rome' -> 100, 'A' -> 0",
            needs=("choices",),
        ),
        _m(
            PASS_AT_K,
            "pass@k",
            "percent",
            "unbiased pass@k over `samples` generations: the prediction plus the item's `tests` is run "
            "in the sandbox and passes if it exits normally; reported as pass@1, pass@10, ... per `k`",
            "5 samples, 2 pass: pass@1 = 40, pass@5 = 100",
            needs_reference=False,
            needs=("tests",),
        ),
    )
}


def lookup(name: str) -> Metric | None:
    """The registry entry for a report name: 'pass@10' is the pass@k metric."""
    if re.fullmatch(r"pass@\d+", name):
        return METRICS[PASS_AT_K]
    return METRICS.get(name)


def option_problems(name: str, options: Mapping[str, Any]) -> list[str]:
    """What is wrong with a metric's options in a request, as messages."""
    metric = METRICS[name]
    problems = [
        f"unknown option {key!r} for {name}"
        + (f" (options: {', '.join(metric.options)})" if metric.options else " (it takes none)")
        for key in options
        if key not in metric.options
    ]
    problems.extend(f"{name} needs option {key!r}" for key in metric.required if key not in options)
    if name == "regex-match" and "pattern" in options:
        try:
            re.compile(str(options["pattern"]))
        except re.error as error:
            problems.append(f"pattern {options['pattern']!r} is not a valid regular expression: {error}")
    if name == "numeric-match" and "tolerance" in options:
        tolerance = options["tolerance"]
        if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or tolerance < 0:
            problems.append(f"tolerance must be a number >= 0, got {tolerance!r}")
    return problems


# item scorers ----------------------------------------------------------------------------------

_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+")


def _as_number(text: str) -> float | None:
    """A reference is a number as a whole: '1,234.5', '$12', '45%' (currency and % stripped)."""
    cleaned = text.strip().strip("$€£%").replace(",", "").strip()
    try:
        value = float(cleaned)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def last_number(text: str) -> float | None:
    """The last number written in a text (thousands separators allowed), as worked answers end."""
    found = _NUMBER.findall(text)
    return float(found[-1].replace(",", "")) if found else None


def numeric_match(prediction: str, references: Sequence[str], tolerance: float = 1e-6) -> float:
    numbers = [_as_number(r) for r in references]
    if any(n is None for n in numbers):
        bad = next(r for r, n in zip(references, numbers, strict=True) if n is None)
        raise ReferenceProblem(f"reference {bad!r} is not a number")
    predicted = last_number(prediction)
    if predicted is None:
        return 0.0
    return 100.0 * any(abs(predicted - n) <= tolerance for n in numbers if n is not None)


def contains(prediction: str, references: Sequence[str]) -> float:
    haystack = f" {normalize_answer(prediction)} "
    return 100.0 * any(f" {normalize_answer(r)} " in haystack for r in references if normalize_answer(r))


def regex_match(prediction: str, pattern: str) -> float:
    return 100.0 * (re.search(pattern, prediction) is not None)


def _canonical(value: Any) -> Any:
    """JSON value in a form where equality is JSON equality: 2 == 2.0, but true != 1, key order ignored."""
    if isinstance(value, bool) or value is None:
        return ("literal", value)
    if isinstance(value, int | float):
        return ("number", float(value))
    if isinstance(value, str):
        return ("string", value)
    if isinstance(value, list):
        return ("array", tuple(_canonical(v) for v in value))
    return ("object", tuple(sorted((k, _canonical(v)) for k, v in value.items())))


def _parse_json(text: str) -> tuple[bool, Any]:
    try:
        return True, json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return False, None


def json_valid(prediction: str) -> float:
    return 100.0 * _parse_json(prediction)[0]


def json_match(prediction: str, references: Sequence[str]) -> float:
    targets = []
    for reference in references:
        ok, value = _parse_json(reference)
        if not ok:
            raise ReferenceProblem(f"reference {reference[:60]!r} is not valid JSON")
        targets.append(_canonical(value))
    ok, value = _parse_json(prediction)
    return 100.0 * (ok and _canonical(value) in targets)


LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LEADING_LETTER = re.compile(r"^(?:\(([A-Z])\)|([A-Z])(?=[.):]|$))")
_ANSWER_LETTER = re.compile(r"\b(?:answer|option|choice)\s*(?:is)?\s*:?\s*\(?([A-Z])\)?(?![\w])", re.I)


def choice_index(text: str, choices: Sequence[str]) -> int | None:
    """Which choice a prediction (or a target) names: by letter, or by the choice's (normalized) text."""
    stripped = text.strip()
    normalized = normalize_answer(stripped)
    matches = [i for i, choice in enumerate(choices) if normalize_answer(str(choice)) == normalized]
    if len(matches) == 1:
        return matches[0]
    for pattern in (_LEADING_LETTER, _ANSWER_LETTER):
        match = pattern.search(stripped)
        letter = match and next(g for g in match.groups() if g)
        if letter and LETTERS.index(letter.upper()) < len(choices):
            return LETTERS.index(letter.upper())
    return None


def choice_accuracy(prediction: str, references: Sequence[str], choices: Sequence[str]) -> float:
    """`references` hold the correct choice's letter (the custom task resolves targets to letters)."""
    correct = {choice_index(r, choices) for r in references}
    if None in correct:
        raise ReferenceProblem(f"reference {references!r} is not one of the {len(choices)} choices")
    return 100.0 * (choice_index(prediction, choices) in correct)


def reference_problem(
    name: str, references: Sequence[str], choices: Sequence[str] | None = None
) -> str | None:
    """Why an item's references cannot be scored by a metric (checked before any model is called)."""
    try:
        if name in ("numeric-match", "json-match", "choice-accuracy"):
            score_item(name, "", references, choices=choices)
    except ReferenceProblem as problem:
        return str(problem)
    return None


ItemScorer = Callable[[str, Sequence[str], Mapping[str, Any], Sequence[str] | None], float]
_ITEM_SCORERS: dict[str, ItemScorer] = {
    "exact-match": lambda p, refs, opts, ch: 100.0 * exact_match(p, list(refs)),
    "f1-score": lambda p, refs, opts, ch: 100.0 * f1(p, list(refs)),
    "contains": lambda p, refs, opts, ch: contains(p, refs),
    "regex-match": lambda p, refs, opts, ch: regex_match(p, str(opts["pattern"])),
    "numeric-match": lambda p, refs, opts, ch: numeric_match(p, refs, float(opts.get("tolerance", 1e-6))),
    "json-valid": lambda p, refs, opts, ch: json_valid(p),
    "json-match": lambda p, refs, opts, ch: json_match(p, refs),
    "choice-accuracy": lambda p, refs, opts, ch: choice_accuracy(p, refs, ch or ()),
}


def score_item(
    name: str,
    prediction: str,
    references: Sequence[str],
    options: Mapping[str, Any] | None = None,
    choices: Sequence[str] | None = None,
) -> float:
    """One item's value (report scale) for a non-batched metric; raises ReferenceProblem."""
    return _ITEM_SCORERS[name](prediction, references, options or {}, choices)


def rouge_best(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> list[dict[str, float]]:
    """ROUGE-1/2/L per item, each the best over the item's references (rouge-score's score_multi rule)."""
    pairs = [(i, p, r) for i, (p, refs) in enumerate(zip(predictions, references, strict=True)) for r in refs]
    scored = score_summaries([p for _, p, _ in pairs], [r for _, _, r in pairs])
    best = [dict.fromkeys(ROUGE, 0.0) for _ in predictions]
    for (i, _, _), values in zip(pairs, scored, strict=True):
        for name in ROUGE:
            best[i][name] = max(best[i][name], values[name])
    return best


def pass_at_k(
    programs: Mapping[str, Sequence[str]], ks: Sequence[int], *, timeout: float, require_isolation: bool
) -> dict[str, dict[str, float]]:
    """{item: {"pass@k": percent}}: every program (a sample plus its tests) runs in the sandbox."""
    flat = [(item, program) for item, item_programs in programs.items() for program in item_programs]
    results = iter(check_programs([p for _, p in flat], timeout=timeout, require_isolation=require_isolation))
    passed = {item: [next(results).passed for _ in item_programs] for item, item_programs in programs.items()}
    return {
        item: {name: 100.0 * value for name, value in estimates.items()}
        for item, estimates in per_problem_pass_at_k(passed, ks).items()
    }
