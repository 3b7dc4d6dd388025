"""JSON on the per-item paths (request bodies, responses, journal lines, stored prompts): orjson.

At tens of thousands of items the standard library's encoder and decoder are a tenth of a run's
CPU; orjson does the same work ten times faster. Where orjson is stricter than the standard library
(integers beyond 64 bits, NaN and lone surrogates in a response), the standard library decides, so
behaviour stays what it was.
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
