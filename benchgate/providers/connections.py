"""The HTTP client sessions providers send through: aiohttp, configured as a careful client would be.

aiohttp was chosen for the request path because it costs about a third of the CPU per request of
httpx/httpcore (5,000 requests at concurrency 32 on this project's 2-core machine: 1.4 s against
4.7 s of process CPU), and a benchmark sends thousands. Each session gets: one shared TLS context
(certifi, or SSL_CERT_FILE / SSL_CERT_DIR, as httpx builds it), HTTP/1.1 keep-alive connections kept
5 s, at most `max_connections` of them, and the proxy the environment names for the URL (HTTP_PROXY /
HTTPS_PROXY / ALL_PROXY, lower or upper case, minus NO_PROXY; SOCKS through aiohttp-socks).
"""

from __future__ import annotations

import functools
import ssl
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from python_socks import ProxyError as SocksProxyError
from yarl import URL

from benchgate.errors import ConfigurationError
from benchgate.providers.attempts import Answer, Failure

KEEPALIVE_EXPIRY_SECONDS = 5.0  # idle connections older than this are not reused
HTTP_PROXY_SCHEMES = frozenset({"http", "https"})
SOCKS_PROXY_SCHEMES = frozenset({"socks4", "socks5", "socks5h"})
# Refused, reset, dropped or malformed connections, proxies included (timeouts are caught before these).
TRANSPORT_ERRORS = (aiohttp.ClientError, OSError, SocksProxyError)


@functools.cache
def ssl_context() -> ssl.SSLContext:
    """Loading the CA bundle costs ~20 ms; every session of every provider shares one context."""
    import httpx  # its context honours SSL_CERT_FILE / SSL_CERT_DIR and falls back to certifi

    return httpx.create_ssl_context()


def bypasses_proxy(host: str, no_proxy: str) -> bool:
    """Whether NO_PROXY exempts `host`, by curl's rules.

    `*` exempts every host; `example.com` exempts it and its subdomains; `.example.com` only its
    subdomains. A scheme or port written in an entry is not compared (the entry exempts its host
    whatever the scheme or port).
    """
    host = host.lower().strip("[]")
    for raw in no_proxy.split(","):
        entry = raw.strip().lower().split("://")[-1]
        if entry == "*":
            return True
        if entry.startswith("["):
            entry = entry[1 : entry.find("]")]
        elif entry.count(":") == 1:
            entry = entry.partition(":")[0]
        if entry.startswith("."):
            if host.endswith(entry):
                return True
        elif entry and (host == entry or host.endswith(f".{entry}")):
            return True
    return False


def environment_proxy(url: URL) -> URL | None:
    """The proxy the environment names for `url` (a scheme's own variable before ALL_PROXY), or None."""
    proxies = urllib.request.getproxies()
    if bypasses_proxy(url.host or "", proxies.get("no", "")):
        return None
    proxy = proxies.get(url.scheme) or proxies.get("all")
    if not proxy:
        return None
    parsed = URL(proxy if "://" in proxy else f"http://{proxy}")
    if parsed.scheme not in HTTP_PROXY_SCHEMES | SOCKS_PROXY_SCHEMES or not parsed.host:
        raise ConfigurationError(
            f"proxy for {url.scheme}://{url.host} (HTTP_PROXY / HTTPS_PROXY / ALL_PROXY): "
            f"{parsed.with_password(None).with_user(None)} is not a proxy URL; "
            "use http, https, socks4, socks5 or socks5h"
        )
    return parsed


@dataclass
class Route:
    """A session for one base URL, the timeouts of its requests, and what each passes (its HTTP
    proxy, if any)."""

    session: aiohttp.ClientSession
    timeout: aiohttp.ClientTimeout
    request_options: dict[str, Any] = field(default_factory=dict)

    async def post(self, target: URL, content: bytes, headers: dict[str, str]) -> Answer | Failure:
        """One POST of `content`. Redirects are not followed: a redirect is the item's error, never
        re-sent, nor the key."""
        try:
            async with self.session.post(
                target,
                data=content,
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,
                **self.request_options,
            ) as response:
                return Answer(response.status, response.headers, await response.read())
        except aiohttp.ServerTimeoutError as error:
            # aiohttp has closed the connection: one whose response was not read to the end is never reused.
            return Failure(
                f"timeout after {self.timeout.sock_read:g}s ({type(error).__name__})",
                timed_out=True,
                abandoned=not isinstance(error, aiohttp.ConnectionTimeoutError),
            )
        except TRANSPORT_ERRORS as error:
            return Failure(f"connection error ({type(error).__name__}: {error})")


def open_route(url: str, max_connections: int, headers: dict[str, str], timeout: float) -> Route:
    """A keep-alive session of up to `max_connections` connections for requests to `url`, whose
    connect (at most 10 s) and each read are bounded by `timeout`.

    `headers` go with every request and must hold no secret: aiohttp also sends a session's
    headers to an HTTP proxy in its CONNECT request, where the proxy would read them. Call it inside
    the event loop that will use it: an aiohttp session belongs to one loop.
    """
    target = URL(url)
    proxy = environment_proxy(target)
    tls = "https" in (target.scheme, proxy.scheme if proxy is not None else None)
    timeouts = aiohttp.ClientTimeout(total=None, sock_connect=min(timeout, 10.0), sock_read=timeout)
    pooling: dict[str, Any] = {
        "limit": max_connections,
        "limit_per_host": 0,
        "keepalive_timeout": KEEPALIVE_EXPIRY_SECONDS,
        "ssl": ssl_context() if tls else True,  # the CA bundle is loaded only for a TLS route
    }
    if proxy is not None and proxy.scheme in SOCKS_PROXY_SCHEMES:
        from aiohttp_socks import ProxyConnector, ProxyType

        connector: aiohttp.BaseConnector = ProxyConnector(
            proxy_type=ProxyType.SOCKS4 if proxy.scheme == "socks4" else ProxyType.SOCKS5,
            host=proxy.host or "",  # environment_proxy refused a proxy URL without a host
            port=proxy.port or 1080,
            username=proxy.user,
            password=proxy.password,
            rdns=proxy.scheme == "socks5h",
            **pooling,
        )
        return Route(_session(connector, headers), timeouts)
    session = _session(aiohttp.TCPConnector(**pooling), headers)
    # Credentials stay in the proxy URL: aiohttp sends them as Proxy-Authorization, and only to the proxy.
    return Route(session, timeouts, {"proxy": proxy} if proxy is not None else {})


def _session(connector: aiohttp.BaseConnector, headers: dict[str, str]) -> aiohttp.ClientSession:
    """No cookie jar: a cookie one response sets must not ride along on the next requests (state
    that no item asked for, shared by every item of the model)."""
    return aiohttp.ClientSession(connector=connector, headers=headers, cookie_jar=aiohttp.DummyCookieJar())
