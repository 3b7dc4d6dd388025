"""Client sessions: the proxy the environment names is used, NO_PROXY exempts hosts as curl's rules say."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from yarl import URL

from benchgate.errors import ConfigurationError, ProviderError
from benchgate.providers.connections import bypasses_proxy, environment_proxy, open_route
from benchgate.spec.example import Example
from tests.providers.conftest import KEY
from tests.support.chat_servers import ChatServer, Reply

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
    https_proxy = environment_proxy(URL("https://api.openai.com/v1"))
    assert https_proxy is not None and str(https_proxy) == "http://tls-proxy.example:3128"
    http_proxy = environment_proxy(URL("http://gpu-box:8000/v1"))
    assert http_proxy is not None and http_proxy.scheme == "socks5"
    assert environment_proxy(URL("https://llm.internal.example/v1")) is None


async def test_a_plain_session_without_proxies_a_socks_connector_and_an_unknown_proxy_scheme_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plain = open_route("https://api.openai.com/v1", 4, {}, 30.0)
    assert type(plain.session.connector) is aiohttp.TCPConnector and plain.request_options == {}
    assert plain.session.connector.limit == 4
    monkeypatch.setenv("ALL_PROXY", "socks5h://user:secret@all.example:1080")
    socks = open_route("https://api.openai.com/v1", 4, {}, 30.0)
    assert type(socks.session.connector).__name__ == "ProxyConnector" and socks.request_options == {}
    monkeypatch.setenv("HTTPS_PROXY", "ftp://user:secret@proxy.example:21")
    unusable = r"ftp://proxy.example is not a proxy URL.*socks5h$"
    with pytest.raises(ConfigurationError, match=unusable) as refused:
        open_route("https://api.openai.com/v1", 4, {}, 30.0)
    assert "secret" not in str(refused.value)
    for route in (plain, socks):
        await route.session.close()


async def test_requests_go_through_the_environment_proxy(monkeypatch: pytest.MonkeyPatch, make: Any) -> None:
    """The chat server plays the forward proxy: it sees the absolute URL and the upstream Host."""
    async with ChatServer() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url.replace("http://", "http://relay:pa%20ss@"))
        provider = make(proxy, base_url="http://upstream.example/v1", key=KEY)
        completion = await provider.complete(EXAMPLE, 0)
    [request] = proxy.requests
    assert completion.text
    assert request.path == "http://upstream.example/v1/chat/completions"
    assert request.headers["host"] == "upstream.example"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["proxy-authorization"] == aiohttp.BasicAuth("relay", "pa ss").encode()


async def test_an_https_request_through_a_proxy_never_shows_the_key_to_the_proxy(
    monkeypatch: pytest.MonkeyPatch, make: Any
) -> None:
    """The proxy of an https URL only relays the tunnel: its CONNECT carries the proxy's own
    credentials, never the provider's key or the model's headers (they go inside the TLS tunnel)."""
    seen: list[bytes] = []

    async def refuse_tunnel(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    proxy = await asyncio.start_server(refuse_tunnel, "127.0.0.1", 0)
    port = proxy.sockets[0].getsockname()[1]
    monkeypatch.setenv("HTTPS_PROXY", f"http://relay:secret@127.0.0.1:{port}")
    async with ChatServer() as upstream:
        provider = make(upstream, base_url="https://api.example/v1", key=KEY, headers={"x-tenant": "t-77"})
        with pytest.raises(ProviderError, match="connection error"):
            await provider.complete(EXAMPLE, 0)
    proxy.close()
    connect = seen[0].decode()
    assert connect.startswith("CONNECT api.example:443 ")
    assert "proxy-authorization: basic cmvsyxk6c2vjcmv0" in connect.lower()  # relay:secret
    assert KEY not in connect and "t-77" not in connect and "authorization: bearer" not in connect.lower()


async def test_a_redirect_is_not_followed(make: Any) -> None:
    """A 307 would re-send the request, key and all, wherever the base_url's server points."""
    async with ChatServer() as elsewhere, ChatServer() as server:
        server.enqueue(Reply(status=307, headers={"location": f"{elsewhere.url}/v1/chat/completions"}))
        provider = make(server, key=KEY)
        with pytest.raises(ProviderError, match="HTTP 307") as refused:
            await provider.complete(EXAMPLE, 0)
    assert not refused.value.transient
    assert len(server.requests) == 1 and elsewhere.requests == []


async def test_a_cookie_a_response_sets_is_not_sent_back(make: Any) -> None:
    async with ChatServer() as server:
        server.enqueue(Reply(text="hi", headers={"set-cookie": "affinity=node-7; Path=/"}))
        # a host name, not an IP address: aiohttp's cookie jar keeps cookies of host names only
        provider = make(server, base_url=server.url.replace("127.0.0.1", "localhost") + "/v1", key=KEY)
        await provider.complete(EXAMPLE, 0)
        await provider.complete(EXAMPLE, 0)
    assert [request.headers.get("cookie") for request in server.requests] == [None, None]
