"""Secrets by reference: one resolver for API keys and webhook secrets, callable from any sync code."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from benchgate.errors import ConfigurationError
from benchgate.secrets import resolve_secret

FIELDS = ("api_key_env", "api_key_secret")
VALUE = "sk-secret-9f8e7d6c5b4a"


class StoredString(BaseModel):
    value: str


class DispatchingSecret:
    """Behaves as Prefect's `Secret.load`: a coroutine in an async context, the block otherwise."""

    stored: ClassVar[dict[str, Any]] = {"openai-key": VALUE}

    def __init__(self, value: Any) -> None:
        self.value = value

    @classmethod
    def load(cls, name: str) -> Any:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return cls._find(name)
        return cls.aload(name)

    @classmethod
    async def aload(cls, name: str) -> DispatchingSecret:
        await asyncio.sleep(0)
        return cls._find(name)

    @classmethod
    def _find(cls, name: str) -> DispatchingSecret:
        if name not in cls.stored:
            raise ValueError(f"Unable to find block document named {name} for block type secret")
        if isinstance(cls.stored[name], int):  # a block of another schema: pydantic quotes the input
            StoredString.model_validate({"value": cls.stored[name]}, strict=True)
        return cls(cls.stored[name])

    def get(self) -> Any:
        return self.value


@pytest.fixture
def fake_secret(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[DispatchingSecret]]:
    from prefect.blocks import system

    monkeypatch.setattr(system, "Secret", DispatchingSecret)
    yield DispatchingSecret


def test_environment_variable_first_and_none_without_a_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCHGATE_TEST_SECRET", VALUE)
    assert resolve_secret("model 'm'", "BENCHGATE_TEST_SECRET", "never-loaded", FIELDS) == VALUE
    assert resolve_secret("model 'm'", None, None, FIELDS) is None


def test_a_missing_variable_names_the_variable_and_its_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BENCHGATE_ABSENT", raising=False)
    with pytest.raises(ConfigurationError) as caught:
        resolve_secret("model 'm'", "BENCHGATE_ABSENT", None, FIELDS)
    assert str(caught.value) == "model 'm': environment variable BENCHGATE_ABSENT (api_key_env) is not set"


def test_a_block_loads_from_sync_code_without_an_event_loop(fake_secret: type[DispatchingSecret]) -> None:
    assert resolve_secret("model 'm'", None, "openai-key", FIELDS) == VALUE


async def test_a_block_loads_from_sync_code_while_an_event_loop_runs(
    fake_secret: type[DispatchingSecret],
) -> None:
    assert resolve_secret("model 'm'", None, "openai-key", FIELDS) == VALUE


def test_block_errors_name_the_block_and_field_never_the_value(
    fake_secret: type[DispatchingSecret], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(fake_secret.stored, "not-a-string", 12345678)
    monkeypatch.setitem(fake_secret.stored, "empty", "")
    expected = {
        "missing": r"'missing' \(api_key_secret\): ValueError: Unable to find block document named missing",
        "not-a-string": r"'not-a-string' \(api_key_secret\) does not hold a Secret",
        "empty": r"'empty' \(api_key_secret\) holds no string",
    }
    for block, message in expected.items():
        with pytest.raises(ConfigurationError, match=message) as caught:
            resolve_secret("model 'm'", None, block, FIELDS)
        assert "12345678" not in str(caught.value)


@pytest.mark.slow
def test_a_real_prefect_secret_block_from_sync_code_in_every_context(prefect_api: str) -> None:
    """Plain sync code, sync code under a running event loop, and sync code inside an async flow."""
    from prefect import flow
    from prefect.blocks.system import Secret
    from prefect.settings import PREFECT_LOGGING_TO_API_ENABLED, temporary_settings

    name = f"benchgate-test-{uuid.uuid4().hex[:8]}"
    Secret(value=VALUE).save(name)

    def resolve() -> str | None:
        return resolve_secret("webhook secret", None, name, ("secret_env", "secret_block"))

    async def under_a_loop() -> str | None:
        return resolve()

    @flow
    async def in_an_async_flow() -> str | None:
        return resolve()

    assert resolve() == VALUE
    assert asyncio.run(under_a_loop()) == VALUE
    with temporary_settings(updates={PREFECT_LOGGING_TO_API_ENABLED: False}):  # the server stops first
        assert asyncio.run(in_an_async_flow()) == VALUE
    with pytest.raises(ConfigurationError, match=r"'absent-block' \(secret_block\)"):
        resolve_secret("webhook secret", None, "absent-block", ("secret_env", "secret_block"))
