"""Connection pools: the proxy the environment names is used, NO_PROXY exempts hosts as curl's rules say."""

from __future__ import annotations

from typing import Any

import httpcore
import httpx
import pytest

from benchgate.errors import ConfigurationError
from benchgate.providers.connections import bypasses_proxy, connection_pool, environment_proxy
from benchgate.spec.example import Example
from tests.providers.conftest import KEY
from tests.support.chat_servers import ChatServer

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
EXAMPLE = Example("q1", [{"role": "user", "content": "Say hello."}], [])


@pytest.fixture(autouse=True)
def no_environment_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.mark.parametrize(
    ("host", "no_proxy", "exempt"),
    [
        ("api.openai.com", "openai.com", True),
        ("openai.com", "openai.com", True),
        ("xopenai.com", "openai.com", False),
        ("api.openai.com", ".openai.com", True),
        ("openai.com", ".openai.com", False),
        ("10.0.0.7", "localhost, 10.0.0.7", True),
        ("::1", "[::1]:8080", True),
        ("localhost", "localhost:8000", True),
        ("api.anthropic.com", "*", True),
        ("api.anthropic.com", "", False),
    ],
)
def test_no_proxy_rules(host: str, no_proxy: str, exempt: bool) -> None:
    assert bypasses_proxy(host, no_proxy) is exempt


def test_a_schemes_own_proxy_wins_over_all_proxy_and_no_proxy_exempts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALL_PROXY", "socks5://all.example:1080")
    monkeypatch.setenv("HTTPS_PROXY", "tls-proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    https_proxy = environment_proxy(httpx.URL("https://api.openai.com/v1"))
    assert https_proxy is not None and str(https_proxy.url) == "http://tls-proxy.example:3128"
    http_proxy = environment_proxy(httpx.URL("http://gpu-box:8000/v1"))
    assert http_proxy is not None and http_proxy.url.scheme == "socks5"
    assert environment_proxy(httpx.URL("https://llm.internal.example/v1")) is None


def test_a_plain_pool_without_proxies_and_an_unknown_proxy_scheme_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert type(connection_pool("https://api.openai.com/v1", 4)) is httpcore.AsyncConnectionPool
    monkeypatch.setenv("HTTPS_PROXY", "ftp://proxy.example:21")
    with pytest.raises(ConfigurationError, match=r"ftp://proxy.example.*use http, https, socks5"):
        connection_pool("https://api.openai.com/v1", 4)


async def test_requests_go_through_the_environment_proxy(monkeypatch: pytest.MonkeyPatch, make: Any) -> None:
    """The chat server plays the forward proxy: it sees the absolute URL and the upstream Host."""
    async with ChatServer() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        provider = make(proxy, base_url="http://upstream.example/v1", key=KEY)
        completion = await provider.complete(EXAMPLE, 0)
    [request] = proxy.requests
    assert completion.text
    assert request.path == "http://upstream.example/v1/chat/completions"
    assert request.headers["host"] == "upstream.example"
    assert request.headers["authorization"] == f"Bearer {KEY}"
