"""report.html: one self-contained page (tables, verdicts, charts, item browser) that needs no network.

The data travels as one JSON blob that page.js draws with DOM calls and textContent only, so model
outputs (untrusted) stay text. The Content-Security-Policy allows nothing but the page's own script
and style (by hash) and data: images: even a bug in the page could not run injected code or fetch.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import orjson

from benchgate.report.formats import write_atomic
from benchgate.report.html.collect import collect
from benchgate.spec.report import json_ready
from benchgate.store import Store

FILENAME = "report.html"
_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{policy}">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
<noscript>This page draws its tables and charts with JavaScript; report.md has the same numbers.</noscript>
<main id="app"></main>
<script type="application/json" id="benchgate-data">{data}</script>
<script>{js}</script>
</body>
</html>
"""
_PAGE_HEAD, _PAGE_TAIL = _PAGE.split("{data}")
# Inside a string of JSON these escapes read back the same, and no `</script>` or `<!--` can form.
# Replaced in the UTF-8 bytes, where these three bytes are never part of a longer character.
_UNSAFE = ((b"<", b"\\u003c"), (b">", b"\\u003e"), (b"&", b"\\u0026"))


def render_html(report: dict[str, Any], items: list[dict[str, Any]], history: list[dict[str, Any]]) -> bytes:
    """The page for a report, its items and its metric history (see collect), as UTF-8.

    The data stays bytes from the encoder to the file: a page of 50,000 items is tens of megabytes,
    and decoding it to text, escaping the text and formatting it into the page made three copies of
    it, and `str.translate` took 0.6 s per 13 MB when the items hold any non-ASCII character.
    """
    css, js = _asset("page.css"), _asset("page.js")
    blob = _json_bytes({"report": report, "items": items, "history": history})
    for unsafe, escaped in _UNSAFE:
        blob = blob.replace(unsafe, escaped)
    policy = (
        f"default-src 'none'; script-src '{_sha256(js)}'; style-src '{_sha256(css)}'; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )
    title = f"{report.get('name', 'benchgate')} · {report.get('benchmarkId', '')} · benchgate"
    head = _PAGE_HEAD.format(policy=policy, title=html.escape(title), css=css)
    return b"".join((head.encode(), blob, _PAGE_TAIL.format(js=js).encode()))


def write_report_html(out_dir: Path, report: dict[str, Any], store: Store) -> Path:
    """Collect the report's items and history from the store and write out_dir/report.html whole."""
    items, history = collect(store, report)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / FILENAME
    write_atomic(path, render_html(report, items, history))
    return path


def _json_bytes(data: dict[str, Any]) -> bytes:
    """Compact JSON without NaN or infinities (null instead). orjson writes them as null itself, ten
    times faster than the standard library after `json_ready` (0.4 s at 50,000 items); the standard
    library where orjson refuses (integers beyond 64 bits)."""
    try:
        return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:
        text = json.dumps(json_ready(data), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return text.encode()


@cache
def _asset(name: str) -> str:
    return files(__package__).joinpath(name).read_text(encoding="utf-8")


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
