"""Request and rules files: YAML or JSON, decoded before validation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from benchgate.errors import RequestError


def read_structured_file(path: str | Path) -> Any:
    """YAML or JSON (JSON is YAML, but JSON errors read better from json)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RequestError([f"(file): cannot read {path}: {error}"], str(path)) from None
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except json.JSONDecodeError as error:
        raise RequestError(
            [f"(file): invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}"], str(path)
        ) from None
    except yaml.YAMLError as error:
        raise RequestError([f"(file): invalid YAML: {error}"], str(path)) from None
