"""Fixtures shared by the provider tests: a local chat server and providers built against it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from benchgate.providers import provider_class
from benchgate.providers.http import HttpProvider, RetryPolicy
from benchgate.spec.request import ModelSpec
from tests.support.chat_servers import ChatServer

KEY = "sk-test-0123456789abcdef"
FAST = RetryPolicy(base=0.01, cap=0.05)


@pytest.fixture
def server() -> Iterator[ChatServer]:
    with ChatServer() as running:
        yield running


@pytest.fixture
async def make() -> AsyncIterator[Any]:
    """Build a provider against a local server; a unique model id keeps limiters per test."""
    made: list[HttpProvider] = []

    def build(server: ChatServer, provider: str = "openai-compatible", key: str | None = KEY, **fields: Any):
        fields.setdefault("base_url", server.url + ("/v1" if "openai" in provider else ""))
        spec = ModelSpec(id=f"t-{uuid.uuid4().hex[:8]}", provider=provider, model="test-model", **fields)
        instance = provider_class(provider)(spec, key)
        instance.retry_policy = FAST
        made.append(instance)
        return instance

    yield build
    for instance in made:
        await instance.aclose()
