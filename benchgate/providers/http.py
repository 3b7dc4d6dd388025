"""The transport every HTTP provider shares: limits, retries, error classification, a circuit breaker.

A provider module only says how an Example becomes a request body and how a response body
becomes a Completion; everything that decides whether an item costs one call or ten lives here.

- Retries: 429, 408/409/425, 5xx (529 included), timeouts and connection errors (refused, reset,
  a keep-alive connection dropped by the server) are retried with exponential backoff and full
  jitter, or after exactly `Retry-After` when the server sends one, within `spec.max_attempts`
  and `spec.retry_budget_seconds` per item. The concurrency slot is released while waiting, and
  a retry then goes to the head of the queue for a slot.
- `concurrency` bounds what the server may be processing for us, abandoned attempts included: a
  timed-out attempt's connection is closed at once, and its slot is held another `timeout`
  seconds before it is given back (a ghost slot, see HttpProvider._hold_abandoned_slot).
- In a work-pool flow run (shared_limits.limits_across_processes) each attempt also holds a slot of
  the model's Prefect global concurrency limit and waits there for its requests-per-minute limit and
  its tokens-per-minute bucket (settled with the tokens the response reports), so the limits hold
  for the whole benchmark, however many processes call the model.
- Other 4xx are the item's own failure (ProviderError, not transient), except 401/403/404, which
  say the key, model or URL is wrong: ProviderConfigError, raised once, and every later call of
  the same provider instance fails immediately with it (no request is sent).
- Client CPU is kept low on purpose: JSON through orjson, a fifth of the standard library's time (a
  body it cannot encode, with an integer past 64 bits, or read, in UTF-16 or with NaN, goes through
  the standard library), bodies encoded once, and requests sent through one aiohttp session per
  provider instance (benchgate.providers.connections) holding as many keep-alive connections as
  the model's concurrency, its fixed headers set once on the session: httpx/httpcore cost about
  three times the CPU per request.
- That transport, and the Prefect-held limits (httpx), are imported with the first instance, not
  with the classes: `benchgate run` reads the classes to check a request (reserved params, base URLs)
  and sends nothing itself; its generation process does. aiohttp and its TLS context cost 0.15-0.25 s
  of the command's start-up otherwise, httpx 0.05 s more before the generation process is forked.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import json
import logging
import random
import time
from abc import abstractmethod
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from uuid import UUID

from benchgate import __version__, jsonio
from benchgate.errors import ConfigurationError, ProviderConfigError, ProviderError
from benchgate.providers.attempts import Answer, Failure
from benchgate.providers.base import Completion, Provider
from benchgate.providers.limits import held_by_server, limiter_for
from benchgate.spec.example import Example
from benchgate.spec.request import ModelSpec

if TYPE_CHECKING:
    from yarl import URL

    from benchgate.providers.connections import Route
    from benchgate.providers.shared_limits import ServerLimiter

logger = logging.getLogger(__name__)

CONFIG_STATUSES = frozenset({401, 403, 404})
TRANSIENT_STATUSES = frozenset({408, 409, 425, 429})
ERROR_MESSAGE_CHARS = 200
Outcome = Literal["config", "item", "transient"]


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff without Retry-After: sleep uniform(0, min(cap, base * 2**(retry - 1)))."""

    base: float = 0.5
    cap: float = 30.0

    def delay(self, retry: int) -> float:
        return random.uniform(0.0, min(self.cap, self.base * 2.0 ** (retry - 1)))


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the server asked us to wait: `retry-after-ms` (OpenAI), Retry-After seconds or HTTP date.

    `headers` is looked up case-insensitively (the response's own header mapping).
    """
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def error_details(content: bytes) -> tuple[str | None, dict[str, Any]]:
    """The provider's own message from an error body, whichever vendor shape it has.

    OpenAI {"error": {"message", "type", "code"}}, Anthropic {"type": "error", "error": {"type",
    "message"}}, Gemini {"error": {"code", "message", "status"}} (sometimes inside a list),
    FastAPI-style servers {"detail": ...}. Returns (message, the error object or {}); the message is
    on one line and at most ERROR_MESSAGE_CHARS long, and None when the body is not such JSON: the
    message is stored per item and shown in reports and logs, so any other body text (an HTML page,
    whatever a base_url answers) is never kept.
    """
    try:
        data = json.loads(content)
    except ValueError:
        return None, {}
    if isinstance(data, list) and data:
        data = data[0]
    if not isinstance(data, dict):
        return None, {}
    error = data.get("error", data)
    if isinstance(error, str):
        return _one_line(error), {}
    if not isinstance(error, dict):
        return None, {}
    message = error.get("message") or error.get("detail")
    if message is None:
        return None, error
    kind = error.get("type") or error.get("status") or error.get("code")
    text = _one_line(message if isinstance(message, str) else json.dumps(message))
    return (f"{text} [{_one_line(str(kind))[:40]}]" if kind else text), error


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= ERROR_MESSAGE_CHARS else text[: ERROR_MESSAGE_CHARS - 1] + "…"


class HttpProvider(Provider):
    """A Provider speaking JSON over HTTP; subclasses build the request and parse the response."""

    default_base_url: ClassVar[str | None] = None
    needs_key: ClassVar[bool] = True
    retry_policy: RetryPolicy = RetryPolicy()

    def __init__(self, spec: ModelSpec, api_key: str | None) -> None:
        from yarl import URL

        from benchgate.providers.connections import environment_proxy

        super().__init__(spec, api_key)
        if self.needs_key and not api_key:
            raise ConfigurationError(
                f"model {spec.id!r}: provider {self.name!r} needs an API key "
                "(set api_key_env or api_key_secret)"
            )
        base_url = spec.base_url or self.default_base_url
        if not base_url:
            raise ConfigurationError(f"model {spec.id!r}: provider {self.name!r} needs a base_url")
        self.base_url = base_url.rstrip("/")
        environment_proxy(URL(self.base_url))  # a proxy setting it cannot use: refused before any call
        self._limiter = limiter_for(spec)
        self._server: ServerLimiter | None = None
        if held_by_server():
            from benchgate.providers.shared_limits import ServerLimiter

            self._server = ServerLimiter(spec, self.base_url)
        self._config_error: ProviderConfigError | None = None
        self._headers = {**self.auth_headers(), **spec.headers, "content-type": "application/json"}
        self._route: Route | None = None  # opened by the first request, in the loop that sends it
        self._urls: dict[str, URL] = {}
        self._ghosts: dict[asyncio.TimerHandle, UUID | None] = {}  # each with its server lease, if any
        self._releasing: set[asyncio.Task[None]] = set()

    @property
    def endpoint(self) -> str:
        return self.base_url

    @abstractmethod
    def auth_headers(self) -> dict[str, str]:
        """Headers carrying the key (and API version); sent with every request."""

    @abstractmethod
    def build_request(self, example: Example) -> tuple[str, dict[str, Any]]:
        """(absolute URL, JSON body) for one example."""

    @abstractmethod
    def parse(self, data: Any) -> Completion:
        """The Completion in a successful response body; KeyError/TypeError/IndexError = malformed."""

    def max_output_tokens(self) -> int:
        value = self.spec.params.get("max_tokens", self.spec.params.get("max_completion_tokens", 0))
        return value if isinstance(value, int) else 0

    def classify(self, status: int, error: dict[str, Any]) -> Outcome:
        """What an error status means for this provider (overridden where a vendor differs)."""
        if status in CONFIG_STATUSES:
            return "config"
        if status in TRANSIENT_STATUSES or status >= 500:
            return "transient"
        return "item"

    async def complete(self, example: Example, sample_index: int) -> Completion:
        if self._config_error is not None:
            raise self._config_error
        url, body = self.build_request(example)
        content = jsonio.dumps(body)
        prompt_chars = sum(len(m.get("content") or "") for m in example.messages)
        estimate = prompt_chars / 4 + self.max_output_tokens()
        return await self._send(url, content, estimate)

    async def _send(self, url: str, content: bytes, estimate: float) -> Completion:
        spec = self.spec
        started = 0.0
        attempt = timeouts = 0
        while True:
            attempt += 1
            await self._limiter.acquire(first=attempt > 1)
            if attempt == 1:  # the budget is for retrying, not for queueing behind other items
                started = time.monotonic()
            abandoned = False
            lease: UUID | None = None
            try:
                if self._config_error is not None:  # opened while this item waited for a slot
                    raise self._config_error
                if self._server is not None:
                    lease = await self._server.acquire()
                await self._limiter.wait_for_rate(estimate)
                if self._server is not None:  # last, so that starts stay paced on the wire
                    await self._server.pace(estimate)
                sent = time.perf_counter()
                outcome = await self._attempt(url, content, estimate)
                abandoned = isinstance(outcome, Failure) and outcome.abandoned
            except ProviderError as error:
                if not isinstance(error, ProviderConfigError):  # the circuit's error is shared by items
                    error.attempts, error.timeouts = attempt, timeouts
                raise
            finally:
                if abandoned:
                    self._hold_abandoned_slot(lease)
                elif lease is None:
                    self._limiter.release()
                else:
                    await self._release(lease)
            if isinstance(outcome, Completion):
                latency_ms = (time.perf_counter() - sent) * 1000.0
                return dataclasses.replace(
                    outcome, latency_ms=latency_ms, attempts=attempt, timeouts=timeouts
                )
            timeouts += outcome.timed_out
            remaining = started + spec.retry_budget_seconds - time.monotonic()
            if attempt >= spec.max_attempts or remaining <= 0:
                elapsed = time.monotonic() - started
                raise ProviderError(
                    f"model {spec.id!r}: gave up after {attempt} attempt(s) in {elapsed:.1f}s "
                    f"(max_attempts={spec.max_attempts}, retry_budget_seconds={spec.retry_budget_seconds:g});"
                    f" last error: {outcome.cause}",
                    transient=True,
                    status=outcome.status,
                    attempts=attempt,
                    timeouts=timeouts,
                )
            wait = outcome.retry_after
            if wait is None:
                wait = self.retry_policy.delay(attempt)
            wait = min(wait, remaining)
            logger.debug("model %r: retrying in %.2fs after %s", spec.id, wait, outcome.cause)
            if wait > 0:
                await asyncio.sleep(wait)

    async def _attempt(self, url: str, content: bytes, estimate: float) -> Completion | Failure:
        route = self._route or self._open_route()
        target = self._urls.get(url) or self._target(url)
        response = await route.post(target, content, self._headers)
        if not isinstance(response, Answer):
            return dataclasses.replace(response, cause=self._scrub(response.cause))
        status, body = response.status, response.body
        if status < 300:
            try:
                data = jsonio.loads(body)
            except ValueError:
                return Failure(f"HTTP {status} with a body that is not JSON", status)
            try:
                completion = self.parse(data)
            except (KeyError, TypeError, IndexError, AttributeError) as error:
                raise ProviderError(
                    f"model {self.spec.id!r}: unexpected response from {url}: {type(error).__name__} {error}",
                    transient=False,
                    status=status,
                ) from None
            if completion.input_tokens is not None or completion.output_tokens is not None:
                used = (completion.input_tokens or 0) + (completion.output_tokens or 0)
                self._limiter.settle(estimate, used)
                if self._server is not None:
                    self._server.settle(used)
            return completion
        self._limiter.settle(estimate, 0)
        if self._server is not None:
            self._server.settle(0)
        provider_message, error_object = error_details(body)
        detail = provider_message or "no error message in the provider's format"
        cause = f"HTTP {status} from {url}: {self._scrub(detail)}"
        outcome = self.classify(status, error_object)
        if outcome == "transient":
            return Failure(cause, status, retry_after_seconds(response.headers))
        if outcome == "config":
            if self._config_error is None:  # items already in flight keep the first error
                self._config_error = ProviderConfigError(
                    f"model {self.spec.id!r} ({self.name}): {cause}; no further requests are sent", status
                )
                logger.error("%s", self._config_error)
            raise self._config_error
        raise ProviderError(f"model {self.spec.id!r}: {cause}", transient=False, status=status)

    def _target(self, url: str) -> URL:
        """`url` exactly as the provider built it (its own percent-encoding kept), parsed once."""
        from yarl import URL

        target = URL(url, encoded=True)
        if len(self._urls) < 256:
            self._urls[url] = target
        return target

    def _open_route(self) -> Route:
        """The session, with the headers that carry no secret; the key and the model's own headers
        (`self._headers`) go with each request only, never to a proxy's CONNECT."""
        from benchgate.providers.connections import open_route

        headers = {"accept": "*/*", "accept-encoding": "identity", "user-agent": f"benchgate/{__version__}"}
        self._route = open_route(self.base_url, self.spec.concurrency, headers, self.spec.timeout)
        return self._route

    def _scrub(self, text: str) -> str:
        """Providers sometimes echo the key back; it must never reach a message or a log."""
        return text.replace(self._api_key, "***") if self._api_key else text

    async def _release(self, lease: UUID) -> None:
        """The server's slot first: a local waiter woken before it would only be refused it."""
        try:
            if self._server is not None:
                await self._server.release(lease)
        finally:
            self._limiter.release()

    def _hold_abandoned_slot(self, lease: UUID | None) -> None:
        """Give a timed-out attempt's concurrency slot back only `timeout` seconds later (a ghost slot).

        Its connection is already closed, which a server honouring disconnects takes as a cancel, but
        some servers keep generating; released at once, the slot would let retries pile up on the
        server beyond `concurrency` (three attempts each: three times as many in flight). We cannot
        see when the server stops, so the slot is held as long again as the attempt was given: a
        server that stops on disconnect loses that much of one slot, one that keeps going is covered
        for requests up to twice the timeout long.
        """

        def release() -> None:
            del self._ghosts[handle]
            if lease is None:
                self._limiter.release()
            else:
                self._track(self._release(lease))

        handle = asyncio.get_running_loop().call_later(self.spec.timeout, release)
        self._ghosts[handle] = lease

    def _track(self, release: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(release)
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    async def aclose(self) -> None:
        """Close the pools once the ghost slots have expired: the limiter outlives this instance.

        Other subflows of the model share its slots, and this loop may be closed next (its timers
        would never fire); cancelled while waiting, the remaining slots are given back at once.
        """
        try:
            if self._ghosts:
                loop = asyncio.get_running_loop()
                await asyncio.sleep(max(handle.when() for handle in self._ghosts) - loop.time())
        finally:
            for handle, lease in self._ghosts.items():
                handle.cancel()
                if lease is None:
                    self._limiter.release()
                else:
                    self._track(self._release(lease))
            self._ghosts.clear()
            if self._releasing:
                await asyncio.gather(*self._releasing, return_exceptions=True)
            if self._server is not None:
                await self._server.aclose()
            if self._route is not None:
                await self._route.session.close()
                self._route = None
