"""Jinja2 for custom tasks: the sandbox, plus limits on time, work and size, so no template hangs a process.

Templates come from requests, and the HTTP API validates requests on its own threads, so a template
is untrusted code. Jinja's sandbox blocks access to internals but not work: nested loops, `'a' * 10**9`,
`'x'|center(10**9)` or a recursive macro would otherwise hold a thread or exhaust memory. Here:

- time: each compile and render has a deadline and a budget of steps (loop iterations, calls,
  filters, operators), checked as it goes; the budget fails a loop bomb the same way on any machine;
- size: no value a template makes (with `*`, `+`, `%`, `~`, a literal, a call, a filter) and no
  output (of the template, a macro, a block) may exceed MAX_CHARS; the operations that amplify
  (repetition, padding, replace, join, format) are estimated before they run, not after;
- depth: recursion (macros, deeply nested source) ends as a limit, not a RecursionError.

Legitimate templates render exactly as in a plain SandboxedEnvironment. A limit raises RenderLimit,
whose message says which limit, never a value of the data.

Most prompts are only text and `{{ field }}`: such a template is rendered by joining the row's
strings (a Jinja render builds a context per row, 11 us, 0.55 s of a 50,000-row task's start-up),
and by Jinja whenever a value is not a string, so every other case stays Jinja's.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import re
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import SandboxedEnvironment, modifies_known_mutable
from jinja2.utils import Namespace, generate_lorem_ipsum
from jinja2.visitor import NodeTransformer

MAX_CHARS = 1_000_000
MAX_SECONDS = 1.0
MAX_STEPS = 200_000
MAX_INT_BITS = 15_000  # about 4,500 digits: Python's own limit for printing an int is 4,300
_MAX_WIDTH_DIGITS = 7  # a width or precision in a format string longer than this exceeds MAX_CHARS
_END = object()
_JINJA_KWARGS = ("_loop_vars", "_block_vars")  # what Jinja adds to calls made inside loops and blocks
_BOUND_NAMES = frozenset({"self", "loop", "caller", "varargs", "kwargs", "super"})  # Jinja binds these


class RenderLimit(Exception):
    """A template went past a limit; the message names the limit, never a value."""


@dataclass
class _Budget:
    deadline: float
    steps: int


_BUDGET: ContextVar[_Budget | None] = ContextVar("benchgate_template_budget", default=None)


@contextmanager
def _limits() -> Iterator[None]:
    token = _BUDGET.set(_Budget(time.monotonic() + MAX_SECONDS, MAX_STEPS))
    try:
        yield
    except RecursionError:
        raise RenderLimit("nested too deeply (recursion)") from None
    except MemoryError:
        raise RenderLimit("out of memory") from None
    finally:
        _BUDGET.reset(token)


def _tick(steps: int = 1) -> None:
    """Work done: fails once the budget of steps or the deadline of the current render is spent."""
    budget = _BUDGET.get()
    if budget is None:  # constant folding while compiling outside _limits: sizes are still checked
        return
    budget.steps -= steps
    if budget.steps < 0:
        raise RenderLimit(f"more than {MAX_STEPS:,} loop steps, calls and operations")
    if time.monotonic() > budget.deadline:
        raise RenderLimit(f"took longer than {MAX_SECONDS:g}s")


def measure(value: Any, limit: int = MAX_CHARS) -> int:
    """About how many characters `str(value)` takes, counted with repeats; stops once past `limit`.

    Walked without recursion; a container inside itself counts as its '[...]'.
    """
    total = 0
    stack: list[Iterator[Any]] = [iter((value,))]
    path: list[int] = [0]  # id of the container each iterator walks
    for visited in itertools.count(1):
        if not stack:
            break
        if visited % 8192 == 0:  # a big walk is work too: it must not outlast the deadline
            _tick(0)
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
            path.pop()
            continue
        total += 2 if len(stack) > 1 else 0  # a separator between items
        if isinstance(item, str | bytes | bytearray):
            total += len(item)
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 1
        elif isinstance(item, Namespace):
            stack.append(_flat(object.__getattribute__(item, "_Namespace__attrs")))
            path.append(id(item))
        elif isinstance(item, range | Undefined) or not isinstance(item, Collection):
            total += 8
        elif id(item) in path:
            total += 5
        else:
            stack.append(_flat(item) if isinstance(item, Mapping) else iter(item))
            path.append(id(item))
        if total > limit:
            break
    return total


def _flat(mapping: Mapping[Any, Any]) -> Iterator[Any]:
    return itertools.chain.from_iterable(mapping.items())


def _checked(value: Any) -> Any:
    if measure(value) > MAX_CHARS:
        raise RenderLimit(f"a value above {MAX_CHARS:,} characters")
    return value


def _refuse_above(estimate: int, what: str) -> None:
    if estimate > MAX_CHARS:
        raise RenderLimit(f"{what} would make a value above {MAX_CHARS:,} characters")


# estimates of the amplifying operations, before they run ------------------------------------------
def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _length(value: Any) -> int:
    return len(value) if isinstance(value, str | bytes) else measure(value)


def _repeated(sequence: Any, times: Any) -> int:
    if not isinstance(sequence, str | bytes | list | tuple) or not isinstance(times, int) or times <= 0:
        return 0
    return measure(sequence, MAX_CHARS // times + 1) * times


def _replaced(text: Any, old: Any, new: Any, count: Any) -> int:
    if isinstance(text, bytes) and isinstance(old, bytes):
        text, old = text.decode("latin-1"), old.decode("latin-1")  # the same counts, as one type
    if not (isinstance(text, str) and isinstance(old, str)):
        return _length(text)  # the method fails on its own
    found = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * _length(new)


def _joined(separator: Any, items: list[Any]) -> int:
    total = _length(separator) * max(len(items) - 1, 0)
    for item in items:
        if total > MAX_CHARS:
            break
        total += measure(item)
    return total


def _formatted(template: Any, values: Any) -> int:
    """`template % values` or `template.format(...)`: any placeholder may take the largest value, widened."""
    if not isinstance(template, str):
        return 0
    widths = re.findall(r"\d+", template)
    if any(len(width) > _MAX_WIDTH_DIGITS for width in widths):
        return MAX_CHARS + 1
    widest = max([int(width) for width in widths] + [_int(v) for v in _as_tuple(values)] + [0])
    placeholders = template.count("%") + template.count("{")
    return len(template) + placeholders * (measure(values) + widest)


def _as_tuple(values: Any) -> tuple[Any, ...]:
    return values if isinstance(values, tuple) else (values,)


def _powered(base: Any, exponent: Any) -> int:
    """Digits of int ** int, as characters."""
    if not isinstance(base, int) or not isinstance(exponent, int) or exponent <= 0 or abs(base) < 2:
        return 0
    if abs(base).bit_length() * exponent > MAX_INT_BITS:
        return MAX_CHARS + 1
    return 0


_BINOP_ESTIMATES: dict[str, Callable[[Any, Any], int]] = {
    "*": lambda left, right: max(_repeated(left, right), _repeated(right, left)),
    "+": lambda left, right: (
        measure(left) + measure(right) if isinstance(left, str | bytes | list | tuple) else 0
    ),
    "%": _formatted,
    "**": _powered,
}

# str and bytes methods that can make more than they are given: (receiver, args, kwargs) -> size
_METHOD_ESTIMATES: dict[str, Callable[[Any, tuple[Any, ...], dict[str, Any]], int]] = {
    "center": lambda s, a, k: max(len(s), _int(a[0] if a else 0)),
    "ljust": lambda s, a, k: max(len(s), _int(a[0] if a else 0)),
    "rjust": lambda s, a, k: max(len(s), _int(a[0] if a else 0)),
    "zfill": lambda s, a, k: max(len(s), _int(a[0] if a else 0)),
    "expandtabs": lambda s, a, k: len(s) + s.count("\t") * _int(a[0] if a else k.get("tabsize", 8)),
    "replace": lambda s, a, k: _replaced(s, *[*a, None, None, -1][:3]),
    "join": lambda s, a, k: _joined(s, a[0] if a and isinstance(a[0], list) else []),
    "format": lambda s, a, k: _formatted(s, (a, k)),
    "format_map": lambda s, a, k: _formatted(s, a),
}

# filters that can make more than they are given: bound arguments (defaults applied) -> size
_FILTER_ESTIMATES: dict[str, Callable[[dict[str, Any]], int]] = {
    "center": lambda a: max(_length(a["value"]), _int(a["width"])),
    "indent": lambda a: (
        _length(a["s"]) + (str(a["s"]).count("\n") + 1) * (_int(a["width"]) or _length(a["width"]))
    ),
    "replace": lambda a: _replaced(a["s"], a["old"], a["new"], a["count"]),
    "join": lambda a: _joined(a["d"], a["value"]),
    "wordwrap": lambda a: (
        _length(a["s"])
        + (_length(a["s"]) // max(_int(a["width"]), 1) + str(a["s"]).count("\n") + 1)
        * (_length(a["wrapstring"]) if a["wrapstring"] is not None else 1)
    ),
    "format": lambda a: _formatted(a["value"], a["kwargs"] or a["args"]),
    "batch": lambda a: _length(a["value"]) + _int(a["linecount"]) * (2 + measure(a["fill_with"])),
    "slice": lambda a: _length(a["value"]) + _int(a["slices"]) * (2 + measure(a["fill_with"])),
    # adding sequences copies the running total once per item
    "sum": lambda a: (
        0 if isinstance(a["start"], int | float) else len(a["iterable"]) * measure(a["iterable"])
    ),
}
_MATERIALISED = {"join": "value", "sum": "iterable"}  # walked twice (estimate, filter): made a list first


def _guarded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    estimate = _FILTER_ESTIMATES.get(name)
    signature = inspect.signature(func) if estimate else None

    @functools.wraps(func)  # keeps jinja's pass_context/pass_environment marker
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _tick()
        if estimate is not None and signature is not None:
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError:
                return func(*args, **kwargs)  # the filter reports its own misuse
            bound.apply_defaults()
            key = _MATERIALISED.get(name)
            if key and isinstance(bound.arguments.get(key), Iterable):
                bound.arguments[key] = list(bound.arguments[key])
            _refuse_above(estimate(bound.arguments), f"filter {name!r}")
            args, kwargs = bound.args, bound.kwargs
        return _checked(func(*args, **kwargs))

    return guarded


def _guarded_test(func: Any) -> Callable[..., Any]:
    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _tick()
        return func(*args, **kwargs)

    return guarded


class _Guards(Extension):
    """What rewritten templates call (see _rewrite): a step per loop iteration, a size check per new value."""

    def steps(self, iterable: Iterable[Any]) -> Iterator[Any]:
        for item in iterable:
            _tick()
            yield item

    def sized(self, value: Any) -> Any:
        _tick()
        return _checked(value)


class _Rewrite(NodeTransformer):
    """Routes loop iterables and new values (literals, `~`) through _Guards, which the sandbox cannot hook."""

    def _guard(self, name: str, node: nodes.Node) -> nodes.Call:
        method = nodes.ExtensionAttribute(_Guards.identifier, name, lineno=node.lineno)
        return nodes.Call(method, [node], [], None, None, lineno=node.lineno)

    def visit_For(self, node: nodes.For) -> nodes.For:
        self.generic_visit(node)
        node.iter = self._guard("steps", node.iter)
        return node

    def _sized(self, node: nodes.Expr) -> nodes.Expr:
        self.generic_visit(node)  # children in place: the node itself is never replaced by them
        return self._guard("sized", node)

    visit_List = visit_Dict = visit_Concat = _sized

    def visit_Tuple(self, node: nodes.Tuple) -> nodes.Expr:
        if node.ctx == "load":
            return self._sized(node)
        self.generic_visit(node)
        return node


class _Undefined(jinja2.StrictUndefined):
    """StrictUndefined whose message names only what the template names: an attribute or key may be data."""

    @property
    def _undefined_message(self) -> str:
        if self._undefined_obj is jinja2.utils.missing and self._undefined_hint is None:
            return f"{self._undefined_name!r} is undefined"  # a variable: a name in the template's source
        return "the template reads an attribute or item that is not there, or that the sandbox does not allow"


class LimitedEnvironment(SandboxedEnvironment):
    """Jinja's sandbox with the limits of this module; build it with `environment()`."""

    intercepted_binops = frozenset(_BINOP_ESTIMATES)  # also stops these being folded while compiling

    @staticmethod
    def concat(pieces: Iterable[str]) -> str:
        """Every output (the template's, a macro's, a block's) is joined here: capped as it grows."""
        parts, total = [], 0
        for piece in pieces:
            total += len(piece)
            if total > MAX_CHARS:
                raise RenderLimit(f"an output above {MAX_CHARS:,} characters")
            parts.append(piece)
        return "".join(parts)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = _Rewrite().visit(super()._parse(source, name, filename))
        tree.set_environment(self)
        return tree

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, str | bytes) and attr in ("translate", "maketrans"):  # any size per character
            return False
        return super().is_safe_attribute(obj, attr, value)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _tick()
        _refuse_above(_BINOP_ESTIMATES[operator](left, right), f"operator {operator!r}")
        return super().call_binop(context, operator, left, right)

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        if isinstance(getattr(obj, "__self__", None), _Guards):
            return context.call(obj, *args, **kwargs)
        _tick()
        method = getattr(obj, "__wrapped__", obj)  # str.format comes wrapped by the sandbox
        receiver, name = getattr(method, "__self__", None), getattr(method, "__name__", "")
        named = {key: value for key, value in kwargs.items() if key not in _JINJA_KWARGS}
        if isinstance(receiver, str | bytes) and name in _METHOD_ESTIMATES:
            if name == "join" and args:
                args = (list(args[0]), *args[1:])
            _refuse_above(_METHOD_ESTIMATES[name](receiver, args, named), f"method {name!r}")
        elif receiver is not None and modifies_known_mutable(receiver, name):
            _refuse_above(measure(receiver) + measure(args) + measure(named), f"method {name!r}")
        elif method is generate_lorem_ipsum:
            words = inspect.signature(generate_lorem_ipsum).bind_partial(*args, **named).arguments
            _refuse_above(_int(words.get("n", 5)) * _int(words.get("max", 100)) * 12, "lipsum")
        return _checked(super().call(context, obj, *args, **kwargs))


def environment(filters: Mapping[str, Callable[..., Any]]) -> LimitedEnvironment:
    """A limited sandbox with StrictUndefined, no autoescaping, and these filters besides Jinja's."""
    env = LimitedEnvironment(undefined=_Undefined, autoescape=False, extensions=[_Guards])
    env.filters.update(filters)
    env.filters = {name: _guarded_filter(name, func) for name, func in env.filters.items()}
    env.tests = {name: _guarded_test(test) for name, test in env.tests.items()}
    return env


def parse(env: LimitedEnvironment, source: str) -> nodes.Template:
    """The syntax tree; raises TemplateSyntaxError, or RenderLimit for source nested too deeply."""
    with _limits():
        return env.parse(source)


@dataclass(frozen=True)
class CompiledTemplate:
    """A compiled template, and its text as (literal, variable name or None) pieces when it is only
    text and plain `{{ name }}` outputs."""

    jinja: jinja2.Template
    pieces: tuple[tuple[str, str | None], ...] | None


def compile_template(env: LimitedEnvironment, source: str) -> CompiledTemplate:
    """Compiled, within the limits (constant parts are evaluated while compiling)."""
    with _limits():
        tree = env.parse(source)
        pieces = _substitution(tree)  # before compiling, whose optimizer rewrites the tree in place
        return CompiledTemplate(env.from_string(tree), pieces)


def _substitution(tree: nodes.Template) -> tuple[tuple[str, str | None], ...] | None:
    pieces: list[tuple[str, str | None]] = []
    text = ""
    for statement in tree.body:
        if not isinstance(statement, nodes.Output):
            return None
        for node in statement.nodes:
            if isinstance(node, nodes.TemplateData):
                text += node.data
            elif type(node) is nodes.Name and node.ctx == "load" and node.name not in _BOUND_NAMES:
                pieces.append((text, node.name))
                text = ""
            else:
                return None
    pieces.append((text, None))
    return tuple(pieces)


def render(template: CompiledTemplate, context: Mapping[str, Any]) -> str:
    if template.pieces is not None:
        parts = []
        for text, name in template.pieces:
            parts.append(text)
            if name is not None:
                value = context.get(name)
                if type(value) is not str:  # Jinja's own conversion, or its error for a missing name
                    break
                parts.append(value)
        else:
            joined = "".join(parts)
            if len(joined) <= MAX_CHARS:
                return joined
    with _limits():
        return template.jinja.render(context)
