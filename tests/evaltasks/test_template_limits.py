"""Templates are untrusted code (the HTTP API validates callers' requests): limits on work, size and
recursion fail a bomb fast with a field-named message, and legitimate templates render unchanged."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from benchgate.evaltasks.custom import templating
from benchgate.evaltasks.custom.definition import lettered
from tests.evaltasks.test_custom_tasks import validate as validate_custom_task

# Each would hang a thread, exhaust memory or crash (RecursionError) without the limits.
BOMBS = {
    "nested loops": "{% for i in range(10000) %}{% for j in range(10000) %}x{% endfor %}{% endfor %}",
    "silent nested loops": "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
    "string repetition": "{{ ('a' * 10**9)|length }}",
    "list repetition": "{{ ([question] * 10**8)|length }}",
    "big power": "{{ (10 ** 1000000)|string|length }}",
    "recursive macro": "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    "padding filter": "{{ question|center(10**9) }}",
    "padding method": "{{ question.ljust(10**9) }}",
    "format width": "{{ '{:>999999999}'.format(question) }}",
    "percent width": "{{ '%999999999s' % question }}",
    "format filter width": "{{ '%999999999s'|format(question) }}",
    "replace": "{% set s = 'a' * 500000 %}{{ s|replace('a', s)|length }}",
    "join": "{% set s = 'a' * 500000 %}{{ s.join(s)|length }}",
    "doubling by ~": "{% set ns = namespace(s=question) %}{% for i in range(64) %}"
    "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
    "doubling by a block": "{% set ns = namespace(s=question) %}{% for i in range(64) %}{% set ns.s %}"
    "{{ ns.s }}{{ ns.s }}{% endset %}{% endfor %}",
    "doubling by literals": "{% set ns = namespace(l=[question]) %}{% for i in range(64) %}"
    "{% set ns.l = [ns.l, ns.l] %}{% endfor %}{{ ns.l|string|length }}",
    "doubling by a method": "{% set l = [question] %}{% for i in range(64) %}{{ l.extend(l) }}{% endfor %}",
    "text in a macro loop": "{% macro f() %}{% for i in range(100000) %}" + "y" * 1000 + "{% endfor %}"
    "{% endmacro %}{{ f()|length }}",
    "lorem ipsum": "{{ lipsum(n=10**7) }}",
    "batch fill": "{{ [1]|batch(10**9, 'x')|list|length }}",
    "source nested deeply": "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}",
}

ROWS = [
    {"id": "q1", "question": "Capital of France?", "answer": "Paris", "options": ["Paris", "Rome"]},
    {"id": "q2", "question": "Capital of Italy?", "answer": "Rome", "options": ["Paris", "Rome"]},
]


def validate(tmp_path: Path, task: dict[str, Any], rows: list[dict[str, Any]] = ROWS) -> tuple[int, str]:
    return validate_custom_task(tmp_path, task, rows)


@pytest.mark.parametrize("source", list(BOMBS.values()), ids=list(BOMBS))
def test_a_template_bomb_is_refused_fast_naming_the_field(tmp_path: Path, source: str) -> None:
    started = time.monotonic()
    code, output = validate(tmp_path, {"prompt": source})
    assert time.monotonic() - started < 5  # a guard against hanging, not a benchmark
    assert code == 2, output
    assert "tasks[0].prompt: template exceeds the rendering limit (" in output, output
    assert "Traceback" not in output


def test_a_bomb_in_the_target_template_names_the_target(tmp_path: Path) -> None:
    code, output = validate(tmp_path, {"target": BOMBS["nested loops"]})
    assert code == 2 and "tasks[0].target: template exceeds the rendering limit (" in output, output


@pytest.mark.parametrize(
    "source",
    [
        "{{ question }}",
        "Q: {{ question|trim|upper }}\n{% for o in options %}{{ loop.index }}. {{ o }}"
        "{{ ', ' if not loop.last }}{% endfor %}\n{{ options|lettered }}",
        "{% set ns = namespace(n=0) %}{% for o in options %}{% set ns.n = ns.n + o|length %}{% endfor %}"
        "{{ ns.n }}",
        "{% macro q(x) %}<{{ x }}>{% endmacro %}{{ q(question) }} {{ q(answer) * 2 }} {{ [1, 2] + [3] }}",
        "{{ '%s=%d' % (answer, 3) }} {{ '{} {}'.format(answer, question) }} {{ options|join(' | ') }}",
        "{{ question|replace('?', '!')|center(30) }} {{ question.split()|map('lower')|join('-') }}",
        "{% set d = {'a': answer, 'b': [1, (2, 3)]} %}{{ d }} {{ d|dictsort }} {{ range(3)|list }}"
        " {{ 2 ** 10 }}",
        "{% filter upper %}{{ question }}{% endfilter %}{% set block %}x{{ answer }}{% endset %}"
        "{{ block * 3 }}",
        "{{ question|wordwrap(10) }} {{ question|indent(2, true) }} {{ options|batch(1)|list }}"
        " {{ [[1], [2]]|sum(start=[]) }}",
    ],
)
def test_legitimate_templates_render_as_in_the_plain_sandbox(source: str) -> None:
    plain = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
    plain.filters["lettered"] = lettered
    limited = templating.environment({"lettered": lettered})
    expected = plain.from_string(source).render(ROWS[0])
    assert templating.render(templating.compile_template(limited, source), ROWS[0]) == expected


def test_a_bomb_is_refused_at_the_first_row_not_at_every_row(tmp_path: Path) -> None:
    rows = [{"id": f"q{i}", "question": "?", "answer": "a", "options": []} for i in range(100)]
    started = time.monotonic()
    code, output = validate(tmp_path, {"prompt": BOMBS["silent nested loops"]}, rows)
    assert time.monotonic() - started < 5
    assert code == 2 and output.count("rendering limit") == 1, output
    assert "(row 1)" in output


SUBSTITUTIONS = [
    "{{ question }}",
    "Q: {{ question }}\nA:",
    "{{- question -}}  {# a comment #} {{ answer }}\n",
    "{% raw %}{{ answer }}{% endraw %} {{question}}{{ question }}\n\n",
    "{{ self }}|{{ question }}",
]
SUBSTITUTION_ROWS = [
    ROWS[0],
    {"question": "", "answer": "ünïcode ✓ {{ not a template }}"},
    {"question": 42, "answer": None},
    {"question": ["a", "b"], "answer": "x"},
    {"answer": "no question"},
]


@pytest.mark.parametrize("source", SUBSTITUTIONS)
@pytest.mark.parametrize("row", SUBSTITUTION_ROWS)
def test_text_and_fields_render_as_in_the_plain_sandbox(source: str, row: dict[str, Any]) -> None:
    plain = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
    compiled = templating.compile_template(templating.environment({}), source)
    try:
        expected: str | type[Exception] = plain.from_string(source).render(row)
    except Exception as error:  # a missing field: the same kind of error either way
        expected = type(error)
    if isinstance(expected, str):
        assert templating.render(compiled, row) == expected
    else:
        with pytest.raises(expected):
            templating.render(compiled, row)


def test_only_text_and_plain_fields_are_joined_without_jinja() -> None:
    env = templating.environment({})
    joined = [templating.compile_template(env, source).pieces for source in SUBSTITUTIONS]
    assert [pieces is not None for pieces in joined] == [True, True, True, True, False]
    assert joined[1] == (("Q: ", "question"), ("\nA:", None))
    for source in ("{{ question|upper }}", "{{ row.question }}", "{% if x %}{{ x }}{% endif %}", "{{ 'a' }}"):
        assert templating.compile_template(env, source).pieces is None, source


def test_a_joined_value_above_the_size_limit_is_refused_as_jinja_refuses_it() -> None:
    compiled = templating.compile_template(templating.environment({}), "Q: {{ question }}")
    with pytest.raises(templating.RenderLimit, match="an output above"):
        templating.render(compiled, {"question": "a" * templating.MAX_CHARS})
