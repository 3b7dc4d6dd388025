"""`@json_flow`: Prefect's `@flow` for flows whose parameters are JSON values, recorded as they are.

Prefect records a flow run's parameters through FastAPI's `jsonable_encoder`, which imports FastAPI's
application and OpenAPI models on a process's first flow run: 0.13-0.2 s of CPU in a command that
serves no web app, on the critical path of a cached rerun. benchgate's flows take a request, ids and
paths (they run on work-pool workers too), for which that conversion returns its input unchanged, so
they are recorded as given; any other value still goes through Prefect's conversion.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from prefect import Flow

P = ParamSpec("P")
R = TypeVar("R")
_SCALARS = (str, int, float, bool, type(None))


def is_json_value(value: object) -> bool:
    """A value made only of JSON's own types: what `jsonable_encoder` would return unchanged."""
    if type(value) in _SCALARS:  # exactly: an Enum or a str subclass is converted by the encoder
        return True
    if type(value) is list:
        return all(is_json_value(item) for item in value)
    if type(value) is dict:
        return all(type(key) is str and is_json_value(item) for key, item in value.items())
    return False


class JsonFlow(Flow[P, R]):
    """A Prefect flow whose JSON parameters are recorded without FastAPI's encoder."""

    def serialize_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        if all(is_json_value(value) for value in parameters.values()):
            return dict(parameters)
        return super().serialize_parameters(parameters)


def json_flow(**options: Any) -> Callable[[Callable[P, R]], Flow[P, R]]:
    """`@flow(**options)`, making a `JsonFlow`."""

    def decorate(function: Callable[P, R]) -> Flow[P, R]:
        return JsonFlow(function, **options)

    return decorate
