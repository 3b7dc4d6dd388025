"""benchgate.jsonio: orjson's speed, the standard library's answers where orjson is stricter."""

from __future__ import annotations

import json
import math

from benchgate import jsonio


def test_what_it_writes_reads_back_as_the_standard_library_reads_it() -> None:
    value = {"model": "m", "messages": [{"role": "user", "content": 'é ☃ \u2028 "q" \\ \n'}], "n": 1.5}
    assert json.loads(jsonio.dumps(value)) == value
    assert jsonio.loads(jsonio.dumps(value)) == value


def test_keys_that_are_not_strings_become_strings_as_with_json() -> None:
    params = {"logit_bias": {50256: -100, 7: 5.5}}
    assert jsonio.loads(jsonio.dumps(params)) == json.loads(json.dumps(params))


def test_an_integer_beyond_64_bits_is_written_as_the_standard_library_writes_it() -> None:
    """2**70 + 1 is not a float: a round trip through a float would lose the + 1."""
    for value in (2**70 + 1, -(2**64) - 1):
        written = jsonio.dumps({"seed": value})
        assert written == json.dumps({"seed": value}, separators=(",", ":")).encode()
        assert json.loads(written) == {"seed": value}


def test_text_only_the_standard_library_accepts_still_parses() -> None:
    parsed = jsonio.loads(b'{"score": NaN, "text": "\\ud800"}')
    assert math.isnan(parsed["score"]) and parsed["text"] == "\ud800"
