"""The provider index: the `provider:` names a request may use, each with the class that serves it.

Classes are imported on first use, so a request naming one provider never imports the others (nor
their HTTP stack). Adding a provider is one module, one line in PROVIDERS and its test; the request
check (benchgate.run.validation) reads the same index.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from benchgate.errors import ConfigurationError
from benchgate.providers.base import Completion, Provider
from benchgate.spec.request import ModelSpec

__all__ = ["PROVIDERS", "Completion", "Provider", "create_provider", "provider_class"]

PROVIDERS: dict[str, str] = {
    "anthropic": "benchgate.providers.anthropic:AnthropicProvider",
    "builtin": "benchgate.providers.builtin:BuiltinProvider",
    "gemini": "benchgate.providers.gemini:GeminiProvider",
    "openai": "benchgate.providers.openai:OpenAIProvider",
    "openai-compatible": "benchgate.providers.openai_compatible:OpenAICompatibleProvider",
}


def provider_class(name: str) -> type[Provider]:
    """The class serving `provider: name`, its module imported now if it was not yet."""
    target = PROVIDERS.get(name)
    if target is None:
        raise ConfigurationError(f"unknown provider {name!r} (providers: {', '.join(PROVIDERS)})")
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, Provider) and cls.name == name):
        raise ConfigurationError(f"provider {name!r}: {target} is not a Provider named {name!r}")
    return cls


def create_provider(spec: ModelSpec, api_keys: Mapping[str, str | None] | None = None) -> Provider:
    """Build the provider with its key: from `api_keys` (model id -> key, resolved by the command
    before it started the generation process), else resolved by reference (env var or Prefect Secret)."""
    from benchgate.secrets import resolve_api_key

    key = api_keys[spec.id] if api_keys is not None and spec.id in api_keys else resolve_api_key(spec)
    return provider_class(spec.provider)(spec, key)
