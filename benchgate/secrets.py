"""Secrets, only ever by reference: an environment variable or a Prefect Secret block.

One resolver for every secret the project reads (model API keys, webhook signing secrets), so that
each is looked up the same way and no message or log ever carries a value: errors name the
reference (the variable, the block, the request field), never what it holds.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

from pydantic import ValidationError

from benchgate.errors import ConfigurationError
from benchgate.spec.request import ModelSpec


def resolve_secret(owner: str, env: str | None, block: str | None, fields: tuple[str, str]) -> str | None:
    """Environment variable `env`, else Prefect Secret block `block`; None when neither is named.

    `owner` says who needs the secret ("model 'gpt'") and `fields` are the request fields holding the
    two references, so that a message points at what to fix.
    """
    env_field, block_field = fields
    if env:
        value = os.environ.get(env)
        if not value:
            raise ConfigurationError(f"{owner}: environment variable {env} ({env_field}) is not set")
        return value
    if not block:
        return None
    try:
        value = load_secret_block(block)
    except ValidationError:  # its message may quote the stored value
        raise ConfigurationError(
            f"{owner}: Prefect Secret block {block!r} ({block_field}) does not hold a Secret"
        ) from None
    except Exception as error:  # Prefect raises ValueError, httpx errors, ObjectNotFound...
        raise ConfigurationError(
            f"{owner}: cannot load Prefect Secret block {block!r} ({block_field}): "
            f"{type(error).__name__}: {error}"
        ) from None
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{owner}: Prefect Secret block {block!r} ({block_field}) holds no string")
    return value


def load_secret_block(name: str) -> Any:
    """What Prefect Secret block `name` holds, from sync code whether or not an event loop is running.

    `Secret.load` answers directly where Prefect sees a sync context and returns a coroutine in an
    async one (an async flow or task, or a running event loop); that coroutine is run to completion
    on Prefect's own event-loop thread, so the loop of the caller is never re-entered.
    """
    from prefect.blocks.system import Secret

    loaded: Any = Secret.load(name)
    if inspect.iscoroutine(loaded):
        from prefect.utilities.asyncutils import run_coro_as_sync

        loaded = run_coro_as_sync(loaded)
    return loaded.get()


def resolve_api_key(spec: ModelSpec) -> str | None:
    """The API key of `spec`, or None when it names none."""
    return resolve_secret(
        f"model {spec.id!r}", spec.api_key_env, spec.api_key_secret, ("api_key_env", "api_key_secret")
    )
