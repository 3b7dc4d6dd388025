"""benchgate's flows record JSON parameters as Prefect would, without importing FastAPI to do it."""

from __future__ import annotations

import datetime
import enum
from pathlib import Path

import pytest
from prefect import flow
from pydantic import BaseModel

from flows.json_flow import json_flow
from tests.support.processes import fresh_interpreter


class Colour(enum.Enum):
    RED = "red"


class Name(str):
    pass


class Point(BaseModel):
    x: int


def take(value: object) -> None:
    """A flow body: only its signature matters here."""


PARAMETERS = [
    {"request": {"name": "r", "models": [{"id": "m", "retries": 3, "temperature": 0.5}], "gate": None}},
    {"nested": [[1, 2.5, "x"], {"deep": [True, False, None]}], "empty": {}, "blank": []},
    {"when": datetime.datetime(2026, 12, 1, 8, 30, tzinfo=datetime.timezone.utc)},
    {"pair": (1, 2), "colour": Colour.RED, "name": Name("n"), "point": Point(x=1)},
    {"mixed": {"fine": 1, "enum inside": [Colour.RED]}, "int keys": {1: "one"}},
    {"path": Path("/tmp/x"), "nan": float("nan")},
]


@pytest.mark.parametrize("parameters", PARAMETERS)
def test_parameters_are_recorded_exactly_as_prefects_own_flow_records_them(parameters):
    ours = json_flow(name="ours")(take).serialize_parameters(parameters)
    prefects = flow(name="prefect's")(take).serialize_parameters(parameters)
    assert repr(ours) == repr(prefects)  # repr: a tuple is not a list, and NaN is not equal to itself


def test_json_parameters_do_not_import_fastapi_and_anything_else_still_converts():
    code = (
        "import datetime, sys\n"
        "from flows.benchmark import benchmark\n"
        "given = {'request': {'name': 'r', 'models': []}, 'out_dir': None}\n"
        "print(benchmark.serialize_parameters(given) == given, 'fastapi' in sys.modules)\n"
        "when = datetime.date(2026, 12, 1)\n"
        "print(benchmark.serialize_parameters({'request': {'day': when}}), 'fastapi' in sys.modules)\n"
    )
    assert fresh_interpreter(code).splitlines() == ["True False", "{'request': {'day': '2026-12-01'}} True"]
