"""Generation keys are the SHA-256 of the canonical JSON of what a generation depends on: the format
stores written by earlier versions hold, so that a cached answer stays found."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from benchgate.run.cache_keys import GenerationKeys
from benchgate.spec.request import ModelSpec

MODELS = [
    {"id": "m", "provider": "openai-compatible", "base_url": "http://127.0.0.1:9/v1"},
    {
        "id": "n",
        "provider": "openai-compatible",
        "base_url": "http://127.0.0.1:9/v1",
        "model": "modèle-7b",
        "params": {"temperature": 0.7, "top_p": 1e-05, "stop": ["\n", "»"], "extra": {"b": 1, "a": None}},
    },
]
MESSAGES = [
    [{"role": "user", "content": "Capital of France?"}],
    [
        {"role": "system", "content": "Réponds en français ✓"},
        {"role": "user", "content": 'a "quoted" \\ line\n'},
    ],
]


def canonical_key(spec: ModelSpec, endpoint: str, messages: Any, sample_index: int, revision: str) -> str:
    material = {
        "provider": spec.provider,
        "model": spec.model_name,
        "endpoint": endpoint,
        "params": spec.params,
        "messages": messages,
        "sample_index": sample_index,
        "dataset_revision": revision,
    }
    encoded = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode()).hexdigest()


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("messages", MESSAGES)
@pytest.mark.parametrize("sample_index", [0, 3, 12])
def test_a_key_is_the_hash_of_the_canonical_json(
    model: dict[str, Any], messages: list[dict[str, str]], sample_index: int
) -> None:
    spec = ModelSpec.model_validate(model)
    keys = GenerationKeys(spec, "http://127.0.0.1:9/v1", "rev-ü")
    assert keys.key(messages, sample_index) == canonical_key(
        spec, "http://127.0.0.1:9/v1", messages, sample_index, "rev-ü"
    )


def test_every_input_changes_the_key() -> None:
    spec = ModelSpec.model_validate(MODELS[1])
    base = GenerationKeys(spec, "http://a/v1", "r1").key(MESSAGES[0], 0)
    others = {
        GenerationKeys(spec, "http://b/v1", "r1").key(MESSAGES[0], 0),
        GenerationKeys(spec, "http://a/v1", "r2").key(MESSAGES[0], 0),
        GenerationKeys(ModelSpec.model_validate(MODELS[0]), "http://a/v1", "r1").key(MESSAGES[0], 0),
        GenerationKeys(spec, "http://a/v1", "r1").key(MESSAGES[1], 0),
        GenerationKeys(spec, "http://a/v1", "r1").key(MESSAGES[0], 1),
    }
    assert base not in others and len(others) == 5
