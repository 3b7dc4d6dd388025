"""API keys, only ever by reference: an environment variable or a Prefect Secret block."""

from __future__ import annotations

import os

from benchgate.errors import ConfigurationError
from benchgate.spec.request import ModelSpec


def resolve_api_key(spec: ModelSpec) -> str | None:
    """The key for `spec`, or None when it names none; errors name the reference, never a value."""
    if spec.api_key_env:
        value = os.environ.get(spec.api_key_env)
        if not value:
            raise ConfigurationError(
                f"model {spec.id!r}: environment variable {spec.api_key_env} (api_key_env) is not set"
            )
        return value
    if spec.api_key_secret:
        return _load_prefect_secret(spec.api_key_secret, spec.id)
    return None


def _load_prefect_secret(name: str, model_id: str) -> str:
    try:
        from prefect.blocks.system import Secret

        # _sync=True: the same blocking call whether or not an event loop is running.
        value = Secret.load(name, _sync=True).get()
    except Exception as error:  # Prefect raises ValueError, httpx errors, ObjectNotFound...
        raise ConfigurationError(
            f"model {model_id!r}: cannot load Prefect Secret block {name!r} (api_key_secret): "
            f"{type(error).__name__}: {error}"
        ) from None
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"model {model_id!r}: Prefect Secret block {name!r} holds no string key")
    return value
