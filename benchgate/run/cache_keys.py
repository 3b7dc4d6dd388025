"""Content-addressed generation keys: same inputs, same key, across runs and machines."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from benchgate.spec.request import ModelSpec


def generation_key(
    spec: ModelSpec, endpoint: str, messages: list[dict[str, str]], sample_index: int, dataset_revision: str
) -> str:
    """Never includes the API key: a key rotation must not invalidate finished generations."""
    material: dict[str, Any] = {
        "provider": spec.provider,
        "model": spec.model_name,
        "endpoint": endpoint,
        "params": spec.params,
        "messages": messages,
        "sample_index": sample_index,
        "dataset_revision": dataset_revision,
    }
    encoded = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(encoded).hexdigest()


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]
