"""Registry, key resolution, the OpenAI wire, and the shared transport's fault handling.

Every test talks to a real HTTP server on 127.0.0.1 (tests/support/chat_servers.py).
"""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import json
import logging
import math
import time
from dataclasses import replace

import httpx
import pytest

from benchgate.errors import ConfigurationError, ProviderConfigError, ProviderError, RequestError
from benchgate.providers import PROVIDERS, create_provider, provider_class
from benchgate.providers.base import Completion
from benchgate.providers.http import HttpProvider, error_details, retry_after_seconds
from benchgate.providers.openai import OpenAIProvider
from benchgate.providers.openai_compatible import OpenAICompatibleProvider
from benchgate.run.validation import parse_request
from benchgate.spec.example import Example
from benchgate.spec.request import ModelSpec
from tests.providers.conftest import KEY
from tests.support.chat_servers import ChatServer, Reply
from tests.support.processes import fresh_interpreter

EXAMPLE = Example(
    "ex-1",
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"}],
    ["4"],
)


def example(i: int) -> Example:
    return Example(f"ex-{i}", [{"role": "user", "content": f"question {i}"}], [])


# --- registry and keys ------------------------------------------------------------------------------


def test_the_index_resolves_every_name_to_its_class():
    assert provider_class("openai-compatible") is OpenAICompatibleProvider
    assert provider_class("openai") is OpenAIProvider
    for name in ("anthropic", "gemini"):
        assert issubclass(provider_class(name), HttpProvider)
    for name in PROVIDERS:
        assert provider_class(name).name == name
    with pytest.raises(
        ConfigurationError, match=r"unknown provider 'nope' \(providers: anthropic, builtin, "
    ):
        provider_class("nope")


def test_a_provider_is_imported_only_when_named():
    """A request naming `builtin` loads neither the HTTP stack nor the other providers."""
    code = (
        "import json, sys\n"
        "from benchgate.providers import provider_class\n"
        "provider_class('builtin')\n"
        "http_stack = [m for m in sys.modules if m.partition('.')[0] in ('aiohttp', 'httpx', 'yarl')]\n"
        "providers = [m for m in sys.modules if m.startswith('benchgate.providers.')]\n"
        "print(json.dumps(sorted(http_stack + providers)))"
    )
    assert json.loads(fresh_interpreter(code)) == ["benchgate.providers.base", "benchgate.providers.builtin"]


def test_only_a_work_pool_lane_loads_the_prefect_held_limits():
    """A provider whose limits this process holds (`benchgate run`) does not import httpx (0.1 s in
    the generation process, before its first request); one in a work-pool lane's block does."""
    code = (
        "import sys\n"
        "from benchgate.providers import create_provider\n"
        "from benchgate.providers.limits import limits_across_processes\n"
        "from benchgate.spec.request import ModelSpec\n"
        "spec = ModelSpec(id='m', provider='openai-compatible', base_url='http://127.0.0.1:9/v1')\n"
        "create_provider(spec)\n"
        "print('httpx' in sys.modules, 'benchgate.providers.shared_limits' in sys.modules)\n"
        "with limits_across_processes():\n"
        "    provider = create_provider(spec)\n"
        "print('httpx' in sys.modules, type(provider._server).__name__)"
    )
    assert fresh_interpreter(code).split("\n")[:2] == ["False False", "True ServerLimiter"]


def test_an_unknown_provider_is_a_request_problem_naming_the_field():
    request = {
        "name": "r",
        "models": [{"id": "m", "provider": "skynet"}],
        "tasks": [{"task": "question-answering"}],
    }
    with pytest.raises(RequestError) as caught:
        parse_request(request)
    assert caught.value.problems == [
        "models[0].provider: unknown provider 'skynet' "
        "(providers: anthropic, builtin, gemini, openai, openai-compatible)"
    ]


def test_create_provider_reads_the_key_from_the_named_variable(monkeypatch):
    monkeypatch.setenv("BENCHGATE_TEST_KEY", KEY)
    spec = ModelSpec(id="gpt", provider="openai", api_key_env="BENCHGATE_TEST_KEY")
    provider = create_provider(spec)
    assert isinstance(provider, OpenAIProvider)
    assert provider.endpoint == "https://api.openai.com/v1"
    assert KEY not in repr(provider) and KEY not in repr(spec)


def test_missing_variable_names_variable_and_model(monkeypatch):
    monkeypatch.delenv("BENCHGATE_ABSENT_KEY", raising=False)
    spec = ModelSpec(id="claude", provider="anthropic", api_key_env="BENCHGATE_ABSENT_KEY")
    with pytest.raises(ConfigurationError, match=r"'claude'.*BENCHGATE_ABSENT_KEY"):
        create_provider(spec)


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_vendor_providers_refuse_to_start_without_a_key(provider):
    with pytest.raises(ConfigurationError, match="needs an API key"):
        create_provider(ModelSpec(id="m", provider=provider))


def test_openai_compatible_needs_no_key():
    provider = create_provider(
        ModelSpec(id="m", provider="openai-compatible", base_url="http://127.0.0.1:9/v1")
    )
    assert "authorization" not in provider._headers


def test_prefect_secret_is_loaded_by_name(monkeypatch):
    from prefect.blocks import system

    class FakeSecret:
        @classmethod
        def load(cls, name: str):
            if name != "openai-key":
                raise ValueError(f"Unable to find block document named {name}")
            return cls()

        def get(self) -> str:
            return KEY

    monkeypatch.setattr(system, "Secret", FakeSecret)
    provider = create_provider(ModelSpec(id="m", provider="openai", api_key_secret="openai-key"))
    assert provider._headers["authorization"] == f"Bearer {KEY}"
    with pytest.raises(ConfigurationError, match=r"'m'.*'missing-block'.*Unable to find"):
        create_provider(ModelSpec(id="m", provider="openai", api_key_secret="missing-block"))


# --- the OpenAI wire --------------------------------------------------------------------------------


async def test_openai_compatible_exact_request_and_parsed_completion(server, make):
    server.reply = lambda request: Reply(text="4", finish_reason="stop", input_tokens=21, output_tokens=1)
    provider = make(server, headers={"X-Tenant": "qa"}, params={"temperature": 0, "max_tokens": 16})
    completion = await provider.complete(EXAMPLE, 0)
    assert replace(completion, latency_ms=None) == Completion(
        text="4", finish_reason="stop", input_tokens=21, output_tokens=1
    )
    assert completion.latency_ms is not None and completion.latency_ms > 0
    [request] = server.requests
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["x-tenant"] == "qa"
    assert request.headers["content-type"] == "application/json"
    assert request.json == {
        "model": "test-model",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is 2+2?"},
        ],
        "temperature": 0,
        "max_tokens": 16,
    }
    assert provider.endpoint == server.url + "/v1"


async def test_openai_compatible_sends_no_authorization_without_a_key(server, make):
    await make(server, key=None).complete(EXAMPLE, 0)
    assert "authorization" not in server.requests[0].headers


async def test_several_samples_of_one_example_are_separate_calls(server, make):
    provider = make(server, params={"temperature": 0.8})
    completions = await asyncio.gather(*(provider.complete(EXAMPLE, i) for i in range(3)))
    assert [c.text for c in completions] == ["echo: What is 2+2?"] * 3
    assert server.count == 3


async def test_openai_sends_organization_and_project_headers(server, make):
    provider = make(server, provider="openai", organization="org-1", project="proj-9")
    assert (await provider.complete(EXAMPLE, 0)).text == "echo: What is 2+2?"
    headers = server.requests[0].headers
    assert headers["authorization"] == f"Bearer {KEY}"
    assert (headers["openai-organization"], headers["openai-project"]) == ("org-1", "proj-9")
    assert server.requests[0].path == "/v1/chat/completions"


async def test_null_content_is_an_empty_text(server, make):
    server.enqueue(
        Reply(
            json={
                "choices": [
                    {"message": {"role": "assistant", "content": None}, "finish_reason": "content_filter"}
                ]
            }
        )
    )
    completion = await make(server).complete(EXAMPLE, 0)
    assert replace(completion, latency_ms=None) == Completion(text="", finish_reason="content_filter")


# --- errors that are not retried -------------------------------------------------------------------


async def test_400_fails_the_item_at_once_with_the_providers_message(server, make):
    server.enqueue(Reply(status=400, message="max_tokens is too large: 99999"))
    provider = make(server)
    with pytest.raises(ProviderError) as caught:
        await provider.complete(EXAMPLE, 0)
    assert type(caught.value) is ProviderError
    assert not caught.value.transient and caught.value.status == 400
    assert "max_tokens is too large: 99999" in str(caught.value)
    assert server.count == 1
    assert (await provider.complete(EXAMPLE, 0)).text  # the next item is unaffected


async def test_401_opens_the_circuit_no_further_requests(server, make):
    server.enqueue(Reply(status=401, message="Incorrect API key provided."))
    provider = make(server)
    with pytest.raises(ProviderConfigError, match="Incorrect API key provided") as first:
        await provider.complete(EXAMPLE, 0)
    assert first.value.status == 401
    for i in range(5):
        with pytest.raises(ProviderConfigError) as later:
            await provider.complete(example(i), 0)
        assert later.value is first.value
    assert server.count == 1


@pytest.mark.parametrize("status", [403, 404])
async def test_403_and_404_are_configuration_errors(server, make, status):
    server.reply = lambda request: Reply(status=status, message="The model `nope` does not exist")
    with pytest.raises(ProviderConfigError, match="does not exist"):
        await make(server).complete(EXAMPLE, 0)


async def test_circuit_stops_queued_items_too(server, make):
    server.latency = 0.05
    server.reply = lambda request: Reply(status=401, message="invalid key")
    provider = make(server, concurrency=4)
    results = await asyncio.gather(
        *(provider.complete(example(i), 0) for i in range(100)), return_exceptions=True
    )
    assert all(isinstance(r, ProviderConfigError) for r in results)
    assert server.count <= 4  # only the first wave reached the server


async def test_insufficient_quota_429_is_not_waited_out(server, make):
    server.enqueue(
        Reply(
            status=429,
            json={
                "error": {
                    "message": "You exceeded your current quota",
                    "type": "x",
                    "code": "insufficient_quota",
                }
            },
        )
    )
    with pytest.raises(ProviderConfigError, match="exceeded your current quota"):
        await make(server, provider="openai").complete(EXAMPLE, 0)
    assert server.count == 1


async def test_malformed_success_body_is_an_item_error(server, make):
    server.enqueue(Reply(json={"unexpected": True}))
    with pytest.raises(ProviderError, match="unexpected response") as caught:
        await make(server).complete(EXAMPLE, 0)
    assert not caught.value.transient


# --- retries ---------------------------------------------------------------------------------------


async def test_429_waits_exactly_retry_after_seconds(server, make):
    server.enqueue(Reply(status=429, headers={"retry-after": "0.4"}))
    completion = await make(server).complete(EXAMPLE, 0)
    assert completion.text == "echo: What is 2+2?"
    first, second = server.requests
    assert 0.38 <= second.received_at - first.received_at < 1.0


async def test_429_honours_retry_after_as_an_http_date(server, make):
    retry_at = math.floor(time.time()) + 2  # HTTP dates have whole seconds
    server.enqueue(Reply(status=429, headers={"retry-after": email.utils.formatdate(retry_at, usegmt=True)}))
    await make(server).complete(EXAMPLE, 0)
    assert server.count == 2
    assert time.time() >= retry_at - 0.05


def test_retry_after_parsing():
    now = 1_700_000_000.0
    assert retry_after_seconds(httpx.Headers({"retry-after": "7"})) == 7.0
    assert retry_after_seconds(httpx.Headers({"retry-after-ms": "250", "retry-after": "1"})) == 0.25
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert retry_after_seconds(httpx.Headers({"retry-after": date}), now=now) == 30.0
    assert retry_after_seconds(httpx.Headers({"retry-after": "garbage"})) is None
    assert retry_after_seconds(httpx.Headers({})) is None


@pytest.mark.parametrize("status", [500, 502, 503, 529, 408])
async def test_transient_statuses_are_retried(server, make, status):
    server.enqueue(Reply(status=status), Reply(status=status))
    assert (await make(server).complete(EXAMPLE, 0)).text == "echo: What is 2+2?"
    assert server.count == 3


async def test_timeouts_are_retried(server, make):
    server.enqueue(Reply(delay=2.0))
    started = time.monotonic()
    assert (await make(server, timeout=0.2).complete(EXAMPLE, 0)).text
    assert server.count == 2 and time.monotonic() - started < 1.5


async def test_dropped_connections_are_retried(server, make):
    provider = make(server)
    await provider.complete(EXAMPLE, 0)  # a keep-alive connection now exists
    server.enqueue(Reply(drop=True), Reply(drop=True))
    assert (await provider.complete(EXAMPLE, 0)).text
    assert server.count == 4


async def test_connection_refused_is_transient_after_the_budget(make):
    with ChatServer() as gone:
        url = gone.url
    provider = make(gone, base_url=url + "/v1", max_attempts=3)
    with pytest.raises(ProviderError, match=r"gave up after 3 attempt.*connection error") as caught:
        await provider.complete(EXAMPLE, 0)
    assert caught.value.transient


async def test_out_of_attempts_is_transient_with_the_last_cause(server, make):
    server.reply = lambda request: Reply(status=503, message="upstream overloaded")
    with pytest.raises(ProviderError) as caught:
        await make(server, max_attempts=3).complete(EXAMPLE, 0)
    error = caught.value
    assert type(error) is ProviderError and error.transient and error.status == 503
    assert "3 attempt" in str(error) and "HTTP 503" in str(error) and "upstream overloaded" in str(error)
    assert server.count == 3


async def test_retry_after_is_capped_by_the_remaining_budget(server, make):
    server.reply = lambda request: Reply(status=429, headers={"retry-after": "30"})
    started = time.monotonic()
    with pytest.raises(ProviderError, match="HTTP 429") as caught:
        await make(server, retry_budget_seconds=0.5).complete(EXAMPLE, 0)
    assert caught.value.transient
    assert time.monotonic() - started < 2.0
    assert server.count == 2  # one capped wait, one last attempt


async def test_retry_budget_does_not_count_queueing_for_the_first_slot(server, make):
    provider = make(server, concurrency=1, retry_budget_seconds=0.3)
    server.enqueue(Reply(delay=0.6), Reply(status=500))
    first = asyncio.create_task(provider.complete(example(1), 0))
    await asyncio.sleep(0.05)
    assert (await provider.complete(example(2), 0)).text == "echo: question 2"  # queued 0.6 s, then retried
    await first


async def test_waiting_for_a_retry_does_not_hold_the_slot(server, make):
    provider = make(server, concurrency=1)
    server.enqueue(Reply(status=429, headers={"retry-after": "0.5"}))
    first = asyncio.create_task(provider.complete(example(1), 0))
    await asyncio.sleep(0.1)
    second_started = time.monotonic()
    await provider.complete(example(2), 0)
    assert time.monotonic() - second_started < 0.3  # went while the first item was waiting
    await first
    assert [r.prompt for r in server.requests] == ["question 1", "question 2", "question 1"]


# --- limits ----------------------------------------------------------------------------------------


async def test_concurrency_is_never_exceeded(server, make):
    server.latency = 0.03
    provider = make(server, concurrency=5)
    await asyncio.gather(*(provider.complete(example(i), 0) for i in range(60)))
    assert server.max_in_flight == 5


async def test_instances_of_one_model_share_the_concurrency(server, make):
    server.latency = 0.03
    first = make(server, concurrency=3)
    second = provider_class("openai-compatible")(first.spec, KEY)  # another subflow, same model
    try:
        await asyncio.gather(*(p.complete(example(i), 0) for i in range(30) for p in (first, second)))
    finally:
        await second.aclose()
    assert server.max_in_flight == 3


@pytest.mark.alone  # each gap between arrivals is timed: another test's load could stagger them
async def test_requests_per_minute_are_paced_evenly(server, make):
    provider = make(server, concurrency=8, rate_limit={"requests_per_minute": 600})  # one per 0.1 s
    await asyncio.gather(*(provider.complete(example(i), 0) for i in range(6)))
    arrivals = sorted(r.received_at for r in server.requests)
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert min(gaps) >= 0.08, gaps
    assert arrivals[-1] - arrivals[0] >= 0.45


# --- secrets never leak ----------------------------------------------------------------------------


async def test_the_key_never_appears_in_errors_or_logs(server, make, caplog):
    caplog.set_level(logging.DEBUG)
    server.enqueue(
        Reply(status=503, message=f"backend rejected {KEY}"),
        Reply(status=401, message=f"Incorrect API key provided: {KEY}."),
    )
    provider = make(server)
    with pytest.raises(ProviderConfigError) as caught:
        await provider.complete(EXAMPLE, 0)
    for text in (str(caught.value), repr(caught.value), repr(provider), caplog.text):
        assert KEY not in text
    assert "Incorrect API key provided: ***" in str(caught.value)


def test_error_details_reads_each_vendor_shape():
    assert error_details(b'{"error": {"message": "bad", "type": "invalid_request_error", "code": null}}') == (
        "bad [invalid_request_error]",
        {"message": "bad", "type": "invalid_request_error", "code": None},
    )
    anthropic = b'{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}'
    assert error_details(anthropic)[0] == "Overloaded [overloaded_error]"
    gemini = b'[{"error": {"code": 400, "message": "Bad model", "status": "INVALID_ARGUMENT"}}]'
    assert error_details(gemini)[0] == "Bad model [INVALID_ARGUMENT]"
    assert error_details(b'{"detail": "Not Found"}')[0] == "Not Found"
    assert error_details(b"<html>502</html>") == (None, {})
