"""The provider interface: one module per provider, nothing else to touch to add one."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from benchgate.spec.example import Example
from benchgate.spec.request import ModelSpec


@dataclass(frozen=True)
class Completion:
    """What a model returned for one (example, sample_index).

    `latency_ms` is the successful request alone, not the wait for a slot or a retry: the model's
    latency, which the report's p50/p95 describe. `attempts` (the successful one included) and
    `timeouts` say what it took, so the report can show what those percentiles leave out.
    """

    text: str
    finish_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    latency_ms: float | None = None
    attempts: int = 1
    timeouts: int = 0


class Provider(ABC):
    """Turns an Example into a Completion.

    Implementations own everything between the engine and the wire: concurrency slots,
    rate limits and retries, so that waiting on a retry never holds a concurrency slot.
    They raise benchgate.errors.ProviderError (transient or not) when an item cannot be done.
    """

    name: ClassVar[str]
    # Body keys the provider builds itself: `params` may not set them (request validation refuses),
    # so a request cannot swap the model, the messages or the wire format it was checked for.
    reserved_params: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, spec: ModelSpec, api_key: str | None) -> None:
        self.spec = spec
        self._api_key = api_key

    @property
    def endpoint(self) -> str:
        """Where generations come from; part of the cache key, never contains a secret."""
        return self.spec.base_url or ""

    @abstractmethod
    async def complete(self, example: Example, sample_index: int) -> Completion: ...

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most providers hold nothing
        """Release connections; called once when the subflow is done with the provider."""
