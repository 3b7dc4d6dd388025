"""The Anthropic Messages and Gemini generateContent wires against local servers speaking them."""

from __future__ import annotations

from dataclasses import replace

import pytest

from benchgate.errors import ProviderConfigError, ProviderError
from benchgate.providers import provider_class
from benchgate.providers.base import Completion
from benchgate.spec.example import Example
from benchgate.spec.request import ModelSpec
from tests.providers.conftest import KEY
from tests.support.chat_servers import Reply

EXAMPLE = Example(
    "ex-1",
    [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "And of Italy?"},
    ],
    ["Rome"],
)


# --- Anthropic -------------------------------------------------------------------------------------


async def test_anthropic_exact_request_and_completion(server, make):
    server.reply = lambda request: Reply(
        text="Rome", finish_reason="end_turn", input_tokens=30, output_tokens=2
    )
    provider = make(server, "anthropic", params={"temperature": 0.2, "top_p": 0.9, "stop": "\n\n"})
    completion = await provider.complete(EXAMPLE, 0)
    assert replace(completion, latency_ms=None) == Completion(
        text="Rome", finish_reason="end_turn", input_tokens=30, output_tokens=2
    )
    [request] = server.requests
    assert (request.method, request.path) == ("POST", "/v1/messages")
    assert request.headers["x-api-key"] == KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers
    assert request.json == {
        "model": "test-model",
        "system": "Answer in one word.",
        "messages": [
            {"role": "user", "content": "Capital of France?"},
            {"role": "assistant", "content": "Paris."},
            {"role": "user", "content": "And of Italy?"},
        ],
        "max_tokens": 1024,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop_sequences": ["\n\n"],
    }


async def test_anthropic_concatenates_text_blocks_and_keeps_max_tokens(server, make):
    server.enqueue(
        Reply(
            json={
                "content": [
                    {"type": "thinking", "thinking": "hmm"},
                    {"type": "text", "text": "Ro"},
                    {"type": "text", "text": "me"},
                ],
                "stop_reason": "max_tokens",
                "usage": {"input_tokens": 5, "output_tokens": 7},
            }
        )
    )
    provider = make(server, "anthropic", params={"max_tokens": 7})
    assert replace(await provider.complete(EXAMPLE, 0), latency_ms=None) == Completion(
        "Rome", "max_tokens", 5, 7
    )
    assert server.requests[0].json["max_tokens"] == 7
    assert provider.endpoint == server.url


async def test_anthropic_errors_surface_its_message(server, make):
    server.enqueue(Reply(status=400, message="messages: roles must alternate"))
    provider = make(server, "anthropic")
    with pytest.raises(ProviderError, match=r"roles must alternate \[invalid_request_error\]") as caught:
        await provider.complete(EXAMPLE, 0)
    assert not caught.value.transient
    server.enqueue(Reply(status=401, message="invalid x-api-key"))
    with pytest.raises(ProviderConfigError, match=r"invalid x-api-key \[authentication_error\]"):
        await provider.complete(EXAMPLE, 0)


async def test_anthropic_529_overloaded_is_retried(server, make):
    server.enqueue(Reply(status=529, message="Overloaded"), Reply(status=529, message="Overloaded"))
    assert (await make(server, "anthropic").complete(EXAMPLE, 0)).text == "echo: And of Italy?"
    assert server.count == 3


async def test_anthropic_default_base_url():
    provider = provider_class("anthropic")(ModelSpec(id="claude", provider="anthropic"), KEY)
    assert provider.endpoint == "https://api.anthropic.com"
    await provider.aclose()


# --- Gemini ----------------------------------------------------------------------------------------


async def test_gemini_exact_request_and_completion(server, make):
    server.reply = lambda request: Reply(text="Rome", finish_reason="STOP", input_tokens=25, output_tokens=1)
    params = {"temperature": 0, "top_p": 0.5, "max_tokens": 64, "stop": ["END"], "safetySettings": []}
    provider = make(server, "gemini", params=params)
    completion = await provider.complete(EXAMPLE, 0)
    assert replace(completion, latency_ms=None) == Completion(
        text="Rome", finish_reason="stop", input_tokens=25, output_tokens=1
    )
    [request] = server.requests
    assert (request.method, request.path) == ("POST", "/v1beta/models/test-model:generateContent")
    assert request.headers["x-goog-api-key"] == KEY
    assert "key=" not in request.path and "authorization" not in request.headers
    assert request.json == {
        "systemInstruction": {"parts": [{"text": "Answer in one word."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "Capital of France?"}]},
            {"role": "model", "parts": [{"text": "Paris."}]},
            {"role": "user", "parts": [{"text": "And of Italy?"}]},
        ],
        "generationConfig": {"temperature": 0, "topP": 0.5, "maxOutputTokens": 64, "stopSequences": ["END"]},
        "safetySettings": [],
    }


async def test_gemini_model_name_cannot_change_the_request_path(server, make):
    """The model name is one path segment: '/', '?' and '..' are escaped, never a path of their own."""
    server.reply = lambda request: Reply(text="Rome", finish_reason="STOP")
    provider = make(server, "gemini")
    provider.spec = provider.spec.model_copy(update={"model": "../../admin?x=1#y"})
    await provider.complete(EXAMPLE, 0)
    [request] = server.requests
    assert request.path == "/v1beta/models/..%2F..%2Fadmin%3Fx%3D1%23y:generateContent"


async def test_gemini_prompt_blocked_for_safety_is_an_outcome(server, make):
    server.enqueue(
        Reply(json={"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 9}})
    )
    completion = await make(server, "gemini").complete(EXAMPLE, 0)
    assert replace(completion, latency_ms=None) == Completion(
        text="", finish_reason="safety", input_tokens=9, output_tokens=0
    )


async def test_gemini_answer_blocked_for_safety_is_an_outcome(server, make):
    server.enqueue(Reply(json={"candidates": [{"finishReason": "SAFETY", "safetyRatings": []}]}))
    completion = await make(server, "gemini").complete(EXAMPLE, 0)
    assert (completion.text, completion.finish_reason) == ("", "safety")


async def test_gemini_skips_thought_parts(server, make):
    parts = [{"text": "thinking...", "thought": True}, {"text": "Rome"}]
    server.enqueue(Reply(json={"candidates": [{"content": {"parts": parts}, "finishReason": "MAX_TOKENS"}]}))
    completion = await make(server, "gemini").complete(EXAMPLE, 0)
    assert (completion.text, completion.finish_reason) == ("Rome", "max_tokens")


async def test_gemini_errors_surface_its_message(server, make):
    server.enqueue(Reply(status=404, message="models/test-model is not found for API version v1beta"))
    provider = make(server, "gemini")
    with pytest.raises(ProviderConfigError, match=r"is not found for API version v1beta \[NOT_FOUND\]"):
        await provider.complete(EXAMPLE, 0)


async def test_gemini_invalid_key_400_is_a_configuration_error(server, make):
    error = {
        "code": 400,
        "message": "API key not valid. Please pass a valid API key.",
        "status": "INVALID_ARGUMENT",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}],
    }
    server.enqueue(Reply(status=400, json={"error": error}))
    provider = make(server, "gemini")
    with pytest.raises(ProviderConfigError, match="API key not valid"):
        await provider.complete(EXAMPLE, 0)
    with pytest.raises(ProviderConfigError):
        await provider.complete(EXAMPLE, 0)
    assert server.count == 1


async def test_gemini_429_is_retried_after_retry_after(server, make):
    server.enqueue(Reply(status=429, message="Resource has been exhausted", headers={"retry-after": "0.2"}))
    assert (await make(server, "gemini").complete(EXAMPLE, 0)).text == "echo: And of Italy?"
    first, second = server.requests
    assert second.received_at - first.received_at >= 0.18


async def test_gemini_default_base_url():
    provider = provider_class("gemini")(ModelSpec(id="g", provider="gemini"), KEY)
    assert provider.endpoint == "https://generativelanguage.googleapis.com"
    await provider.aclose()
