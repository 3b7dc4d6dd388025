"""What a provider's error response leaves in a message (stored per item, shown in report.md and logs):
the status and the provider's own error message, truncated, only when the body is its error JSON."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from benchgate.errors import ProviderError
from benchgate.providers import provider_class
from benchgate.providers.http import ERROR_MESSAGE_CHARS, HttpProvider, RetryPolicy, error_details
from benchgate.spec.example import Example
from benchgate.spec.request import ModelSpec

SENTINEL = "internal-host-secret"
EXAMPLE = Example("e1", [{"role": "user", "content": "hi"}], ["x"])


class _Handler(BaseHTTPRequestHandler):
    status = 400
    content_type = "text/html"
    body = b""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(self.status, "Bad " + SENTINEL)  # the reason phrase is the server's text too
        self.send_header("content-type", self.content_type)
        self.send_header("content-length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def answering() -> Iterator[type[_Handler]]:
    """A server answering every POST with the handler class's status, content type and body."""
    handler = type("Handler", (_Handler,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    handler.url = f"http://127.0.0.1:{server.server_port}/v1"  # type: ignore[attr-defined]
    try:
        yield handler
    finally:
        server.shutdown()
        server.server_close()


async def failure(handler: type[_Handler]) -> ProviderError:
    url = handler.url  # type: ignore[attr-defined]
    spec = ModelSpec(id="m", provider="openai-compatible", base_url=url, max_attempts=1)
    provider = provider_class("openai-compatible")(spec, None)
    assert isinstance(provider, HttpProvider)
    provider.retry_policy = RetryPolicy(base=0.01, cap=0.01)
    try:
        with pytest.raises(ProviderError) as caught:
            await provider.complete(EXAMPLE, 0)
    finally:
        await provider.aclose()
    return caught.value


@pytest.mark.parametrize("status", [400, 500])
async def test_an_html_error_page_is_not_stored(answering: type[_Handler], status: int) -> None:
    answering.status = status
    answering.body = f"<html><body><pre>{SENTINEL}\nTraceback: /srv/app.py</pre></body></html>".encode()
    error = await failure(answering)
    assert f"HTTP {status}" in str(error)
    assert SENTINEL not in str(error) and "<html>" not in str(error), str(error)


async def test_the_provider_message_is_kept_truncated_on_one_line(answering: type[_Handler]) -> None:
    answering.content_type = "application/json"
    message = "bad request\n" + "x" * 1000 + SENTINEL
    answering.body = json.dumps({"error": {"message": message, "type": "invalid_request_error"}}).encode()
    error = str(await failure(answering))
    assert "HTTP 400" in error and "bad request xxx" in error and "[invalid_request_error]" in error
    assert SENTINEL not in error and "\n" not in error


def test_error_details_keeps_at_most_the_limit() -> None:
    text, _ = error_details(b'{"detail": "' + b"y" * 5000 + b'"}')
    assert text is not None and len(text) == ERROR_MESSAGE_CHARS
    assert error_details(b"plain text " + SENTINEL.encode()) == (None, {})
