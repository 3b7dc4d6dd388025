"""The connection pools HTTP providers send through: httpcore's public pools, configured as httpx would.

Requests skip httpx's client layers (about 30% of the CPU at high request rates), so the pool is built
here with what httpx would have given it: the same TLS context (certifi, or SSL_CERT_FILE /
SSL_CERT_DIR), HTTP/1.1 only, keep-alive connections kept 5 s, and the proxy the environment names
for the URL (HTTP_PROXY / HTTPS_PROXY / ALL_PROXY, lower or upper case, minus NO_PROXY).
"""

from __future__ import annotations

import functools
import ssl
import urllib.request
from typing import Any

import httpcore
import httpx

from benchgate.errors import ConfigurationError

KEEPALIVE_EXPIRY_SECONDS = 5.0  # httpx's default: idle connections older than this are not reused


@functools.cache
def ssl_context() -> ssl.SSLContext:
    """Loading the CA bundle costs ~20 ms; every pool of every provider shares one context."""
    return httpx.create_ssl_context()


def bypasses_proxy(host: str, no_proxy: str) -> bool:
    """Whether NO_PROXY exempts `host`, by curl's rules as httpx applies them.

    `*` exempts every host; `example.com` exempts it and its subdomains; `.example.com` only its
    subdomains. A scheme or port written in an entry is not compared (the entry exempts its host
    whatever the scheme or port), where httpx would compare them.
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


def environment_proxy(url: httpx.URL) -> httpx.Proxy | None:
    """The proxy the environment names for `url` (a scheme's own variable before ALL_PROXY), or None."""
    proxies = urllib.request.getproxies()
    if bypasses_proxy(url.host, proxies.get("no", "")):
        return None
    proxy = proxies.get(url.scheme) or proxies.get("all")
    if not proxy:
        return None
    try:
        return httpx.Proxy(proxy if "://" in proxy else f"http://{proxy}")
    except ValueError as error:  # a scheme httpx cannot proxy through (its message masks a password)
        raise ConfigurationError(
            f"proxy for {url.scheme}://{url.host} (HTTP_PROXY / HTTPS_PROXY / ALL_PROXY): {error}; "
            "use http, https, socks5 or socks5h"
        ) from None


def connection_pool(url: str, max_connections: int) -> httpcore.AsyncConnectionPool:
    """A keep-alive pool of up to `max_connections` connections for requests to `url`."""
    route = httpx.URL(url)
    proxy = environment_proxy(route)
    pooling: dict[str, Any] = {
        "ssl_context": ssl_context(),
        "max_connections": max_connections,
        "max_keepalive_connections": max_connections,
        "keepalive_expiry": KEEPALIVE_EXPIRY_SECONDS,
        "http1": True,
        "http2": False,
    }
    if proxy is None:
        return httpcore.AsyncConnectionPool(**pooling)
    proxy_url = httpcore.URL(
        scheme=proxy.url.raw_scheme, host=proxy.url.raw_host, port=proxy.url.port, target=proxy.url.raw_path
    )
    if proxy.url.scheme in ("http", "https"):
        return httpcore.AsyncHTTPProxy(
            proxy_url=proxy_url, proxy_auth=proxy.raw_auth, proxy_headers=proxy.headers.raw, **pooling
        )
    return httpcore.AsyncSOCKSProxy(proxy_url=proxy_url, proxy_auth=proxy.raw_auth, **pooling)
