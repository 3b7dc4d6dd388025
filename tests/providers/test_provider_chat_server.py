"""The local chat server the provider, pipeline and benchmark tests rely on."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from benchgate.providers import provider_class
from benchgate.spec.example import Example
from benchgate.spec.request import ModelSpec
from tests.support.chat_servers import ChatServer, Reply

ROOT = Path(__file__).resolve().parents[2]
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
EXAMPLE = Example("e", [{"role": "user", "content": "hi"}], [])


async def test_serves_128_concurrent_keep_alive_connections():
    """Structure only; throughput under load is bench/throughput.py's job (timing here would flake)."""
    spec = ModelSpec(id="chat-server-128", provider="openai-compatible", base_url="http://127.0.0.1:1/v1")
    async with ChatServer(latency=0.1, record=False) as server:
        spec = spec.model_copy(update={"base_url": server.url + "/v1", "concurrency": 128})
        provider = provider_class("openai-compatible")(spec, None)
        await asyncio.gather(*(provider.complete(EXAMPLE, i) for i in range(512)))
        await provider.aclose()
    assert server.count == 512
    assert server.max_in_flight == 128 and server.connections_opened == 128


def test_faults_by_rate_and_control_endpoints():
    faulty = ChatServer(fault_rates={429: 0.3, 500: 0.2}, retry_after="1", record=False)
    with faulty as server, httpx.Client(base_url=server.url) as client:
        statuses = [client.post("/v1/chat/completions", json=CHAT).status_code for _ in range(400)]
        stats = client.get("/_stats").json()
        assert statuses.count(200) + statuses.count(429) + statuses.count(500) == 400
        assert 80 <= statuses.count(429) <= 160 and 40 <= statuses.count(500) <= 120
        assert stats["requests"] == 400 and stats["faults_injected"] == 400 - statuses.count(200)
        client.post("/_reset")
        assert client.get("/_stats").json()["requests"] == 0


def test_unknown_paths_answer_404_in_openai_shape():
    with ChatServer() as server, httpx.Client(base_url=server.url) as client:
        response = client.post("/v1/completions", json={"prompt": "x"})
    assert response.status_code == 404 and "no chat endpoint" in response.json()["error"]["message"]


def test_dropped_connection_is_seen_by_the_client():
    with ChatServer() as server, httpx.Client(base_url=server.url) as client:
        server.enqueue(Reply(drop=True))
        with pytest.raises(httpx.TransportError):
            client.post("/v1/chat/completions", json=CHAT)
        assert (
            client.post("/v1/chat/completions", json=CHAT).json()["choices"][0]["message"]["content"]
            == "echo: hi"
        )


def test_runs_as_a_separate_process_and_prints_its_port():
    command = [sys.executable, "-m", "tests.support.chat_servers", "--port", "0", "--latency", "0.01"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        announced = json.loads(process.stdout.readline())
        with httpx.Client(base_url=announced["url"]) as client:
            answer = client.post("/v1/chat/completions", json=CHAT).json()
            assert answer["choices"][0]["message"]["content"] == "echo: hi"
            stats = client.get("/_stats").json()
        assert stats["requests"] == 1 and stats["span_seconds"] >= 0.01
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


async def test_request_and_response_bodies_keep_their_values_through_orjson_and_its_fallback():
    """A body orjson cannot encode (an integer past 64 bits) or read (NaN) takes the standard library."""
    text = 'héllo — 😀 \u2028 "quoted" \\ back\nslash'
    example = Example("e", [{"role": "user", "content": text}], [])
    params = {"seed": 2**70, "temperature": 0.1, "logit_bias": {"50256": -100}}
    async with ChatServer() as server:
        spec = ModelSpec(id="m", provider="openai-compatible", base_url=server.url + "/v1", params=params)
        provider = provider_class("openai-compatible")(spec, None)
        answer = {"message": {"content": "ünï 😀 <b>"}, "finish_reason": "stop"}
        server.enqueue(Reply(json={"id": 2**70, "x": float("nan"), "choices": [answer]}))
        usage = {"prompt_tokens": 3, "completion_tokens": 4}
        server.enqueue(Reply(json={"choices": [answer], "usage": usage}))
        first, second = [await provider.complete(example, i) for i in range(2)]
        await provider.aclose()
    sent = [json.loads(request.body) for request in server.requests]
    assert [body["seed"] for body in sent] == [2**70, 2**70]
    assert sent[0]["messages"] == [{"role": "user", "content": text}]
    assert sent[0]["temperature"] == 0.1 and sent[0]["logit_bias"] == {"50256": -100}
    assert first.text == second.text == "ünï 😀 <b>"
    assert (second.input_tokens, second.output_tokens) == (3, 4)
