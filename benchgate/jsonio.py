"""JSON the run writes once per item (journal lines, stored prompts, the examples file): orjson.

The standard library's encoder took several percent of a large run's CPU there; orjson does the
same work ten times faster. Where orjson is stricter (integers beyond 64 bits when writing; NaN and
lone surrogates when reading), the standard library decides, so what is written and read stays the
same. One difference remains, and `loads` is used only where it cannot matter: orjson reads an
integer beyond 64 bits as a float, without an error. What is read here holds texts and token counts
(messages, references, model answers); values from a user's dataset (an example's fields, its rows)
are read with the standard library, and checking every text for such integers first would cost more
than orjson saves.
Request bodies and responses keep the standard library: parsing 50,000 responses with orjson saved
no measurable time and raised the run's peak memory by 50 MiB.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON; keys that are not strings become strings, as with `json.dumps`."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def loads(data: bytes | str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)
