"""Provider registry: `provider: foo-bar` lives in module benchgate.providers.foo_bar as PROVIDER.

Modules are imported lazily, so adding a provider touches one file and a request naming one
provider never imports the others.
"""

from __future__ import annotations

import importlib

from benchgate.errors import ConfigurationError
from benchgate.providers.base import Completion, Provider
from benchgate.spec.request import ModelSpec

__all__ = ["Completion", "Provider", "create_provider", "provider_class"]


def provider_class(name: str) -> type[Provider]:
    module_name = f"{__name__}.{name.replace('-', '_')}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name:
            raise
        raise ConfigurationError(f"unknown provider {name!r} (no module {module_name})") from None
    cls = getattr(module, "PROVIDER", None)
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise ConfigurationError(f"provider module {module_name} has no PROVIDER class")
    return cls


def create_provider(spec: ModelSpec) -> Provider:
    """Resolve the key by reference (env var or Prefect Secret) and build the provider."""
    from benchgate.secrets import resolve_api_key

    return provider_class(spec.provider)(spec, resolve_api_key(spec))
