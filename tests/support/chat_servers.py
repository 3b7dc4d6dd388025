"""Local chat-model servers speaking the three wire protocols, for tests and benchmarks.

One `ChatServer` answers all three protocols, chosen by path:
  POST .../chat/completions                      OpenAI chat completions (and OpenAI-compatible)
  POST .../v1/messages                           Anthropic messages
  POST .../models/{model}:generateContent        Gemini generateContent
It records every request, answers through a pluggable reply function, injects faults (status codes
with Retry-After, delays, dropped connections), and counts requests in flight. By default a request
runs to its end when its client disconnects (as on servers that keep generating for nobody);
`stop_on_disconnect=True` drops its work at once instead (as servers that honour disconnects do).
Control endpoints: GET /_stats (counters and the first-request / last-response times) and POST /_reset.

It is a small HTTP/1.1 keep-alive server on asyncio.Protocol (no framework), so that one core can
serve 128 concurrent connections at 100 ms latency with CPU to spare for the client under test.

In a test:
    with ChatServer(reply=lambda request: "hello") as server:
        spec = ModelSpec(id="m", provider="openai-compatible", base_url=server.url + "/v1")
        ...
        assert server.requests[0].json["model"] == "m"
        server.enqueue(Reply(status=429, headers={"retry-after": "1"}))   # the next request fails

As a separate process (benchmarks, end-to-end tests):
    python -m tests.support.chat_servers --port 0 --latency 0.1 [--fault 429=0.2 --fault 500=0.1]
    (`--reply judge` answers benchgate's judge prompts, see judge())
prints `{"port": N, "url": "http://127.0.0.1:N"}` as its first stdout line and serves until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    529: "Overloaded",
}
_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}
_GEMINI_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    503: "UNAVAILABLE",
}


@dataclass
class ChatRequest:
    """One request as received, plus its chat content normalised across wires."""

    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    received_at: float  # time.monotonic()
    wire: str = "unknown"  # openai | anthropic | gemini | unknown
    json: Any = None
    model: str | None = None
    messages: list[dict[str, str]] = field(default_factory=list)  # [{role, content}], system first

    @property
    def prompt(self) -> str:
        """The last user message: what a deterministic reply usually depends on."""
        return next((m["content"] for m in reversed(self.messages) if m["role"] == "user"), "")


@dataclass
class Reply:
    """A full answer: text for a success, or a status with an error in the wire's shape.

    `json` replaces the body entirely (e.g. a Gemini safety block); `drop` closes the connection
    without answering (after `delay`); `delay` adds to the server's latency.
    """

    text: str = ""
    status: int = 200
    finish_reason: str | None = None
    message: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None
    delay: float = 0.0
    drop: bool = False
    input_tokens: int | None = None
    output_tokens: int | None = None


ReplyFunction = Callable[[ChatRequest], "str | Reply"]


def echo(request: ChatRequest) -> str:
    """The default reply: deterministic, and different for every prompt."""
    return f"echo: {request.prompt}"


JUDGE_GARBLE = "(judge: garble)"
"""An item whose conversation holds this gets a verdict no parser accepts from `judge`."""
GENERIC_REPLY = "Thanks for reaching out! A colleague will look into this and get back to you."


def _section(prompt: str, title: str) -> str | None:
    """The paragraph under `[title]` in one of benchgate's built-in judge prompts."""
    match = re.search(rf"\[{re.escape(title)}\]\n(.*?)(?:\n\n|\Z)", prompt, re.S)
    return match.group(1).strip() if match else None


def _holds(answer: str, reference: str) -> bool:
    return bool(reference) and reference.strip().lower() in answer.lower()


def judge(request: ChatRequest) -> str:
    """A deterministic judge for benchgate's built-in rubric and pairwise prompts, computed from the input.

    Rubric: `Score: 4` when the graded answer contains the reference, `Score: 1` otherwise (a reasoning
    line first). Pairwise: the reply containing the reference wins; when neither or both do, it prefers
    position A (a position-biased judge, so the two orders disagree and the item is a tie). A conversation
    holding JUDGE_GARBLE gets a reply without a verdict. Any other request gets GENERIC_REPLY, so one
    server can play a weak candidate and the judge in a demo.
    """
    prompt = request.prompt
    if JUDGE_GARBLE in prompt and ("[Answer to grade]" in prompt or "[Reply A]" in prompt):
        return "Hmm, hard to say. Both have merit."
    reference = _section(prompt, "Reference answer") or ""
    graded = _section(prompt, "Answer to grade")
    if graded is not None:
        return f"Compared with the reference.\nScore: {4 if _holds(graded, reference) else 1}"
    first, second = _section(prompt, "Reply A"), _section(prompt, "Reply B")
    if first is not None and second is not None:
        winner = "B" if _holds(second, reference) and not _holds(first, reference) else "A"
        return f"Compared both replies.\nWinner: {winner}"
    return GENERIC_REPLY


REPLIES: dict[str, ReplyFunction] = {"echo": echo, "judge": judge}


class ChatServer:
    """A recording, fault-injecting chat server on 127.0.0.1 (thread or in-process asyncio)."""

    def __init__(
        self,
        reply: ReplyFunction = echo,
        *,
        latency: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        record: bool = True,
        fault_rates: dict[int, float] | None = None,
        retry_after: str | None = None,
        seed: int = 0,
        stop_on_disconnect: bool = False,
    ) -> None:
        self.reply = reply
        self.stop_on_disconnect = stop_on_disconnect
        self.latency = latency
        self.host = host
        self.port = port
        self.record = record
        self.fault_rates = dict(fault_rates or {})
        self.retry_after = retry_after
        self.requests: list[ChatRequest] = []
        self._queued: deque[Reply] = deque()
        self._random = random.Random(seed)
        self._server: asyncio.base_events.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[asyncio.Transport] = set()
        self.reset()

    # --- counters -------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget recorded requests, queued replies and counters (not the configuration)."""
        self.requests.clear()
        self._queued.clear()
        self.count = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.faults_injected = 0
        self.connections_opened = 0
        self.first_request_at: float | None = None
        self.last_request_at: float | None = None
        self.last_response_at: float | None = None

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.count,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "faults_injected": self.faults_injected,
            "connections_opened": self.connections_opened,
            "first_request_at": self.first_request_at,
            "last_request_at": self.last_request_at,
            "last_response_at": self.last_response_at,
            "span_seconds": (self.last_response_at - self.first_request_at)
            if self.first_request_at is not None and self.last_response_at is not None
            else None,
        }

    def enqueue(self, *replies: Reply) -> None:
        """The next len(replies) chat requests get these replies, in order, before `reply` is used."""
        self._queued.extend(replies)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # --- lifecycle ------------------------------------------------------------------------------
    async def astart(self) -> ChatServer:
        """Serve from the running event loop (a separate process, or an async test)."""
        self._loop = asyncio.get_running_loop()
        self._server = await self._loop.create_server(
            lambda: _Connection(self), self.host, self.port, backlog=1024, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def astop(self) -> None:
        if self._server is not None:
            self._server.close()
            for transport in list(self._connections):
                transport.abort()
            await self._server.wait_closed()
            self._server = None

    def start(self) -> ChatServer:
        """Serve from a daemon thread with its own event loop; returns once listening."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(self.astart())
            except BaseException as error:  # reported to start(), which re-raises it
                failure.append(error)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.astop())
            loop.close()

        self._thread = threading.Thread(target=run, name=f"chat-server-{id(self)}", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._thread is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> ChatServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> ChatServer:
        return await self.astart()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.astop()

    # --- request handling -----------------------------------------------------------------------
    def _handle(self, connection: _Connection, request: ChatRequest) -> None:
        if request.path.startswith("/_"):
            self._control(connection, request)
            return
        _normalise(request)
        self.count += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        if self.first_request_at is None:
            self.first_request_at = request.received_at
        self.last_request_at = request.received_at
        if self.record:
            self.requests.append(request)
        reply = self._choose_reply(request)
        status, headers, body = (0, {}, b"") if reply.drop else _render(request, reply)
        delay = self.latency + reply.delay
        assert self._loop is not None
        if delay > 0:
            answer = (connection, reply.drop, status, headers, body)
            pending = self._loop.call_later(delay, self._finish, *answer)
            connection.pending = pending if self.stop_on_disconnect else None
        else:
            self._finish(connection, reply.drop, status, headers, body)

    def _choose_reply(self, request: ChatRequest) -> Reply:
        if self._queued:
            return self._queued.popleft()
        if self.fault_rates:
            draw = self._random.random()
            for status, rate in self.fault_rates.items():
                if draw < rate:
                    self.faults_injected += 1
                    headers = {"retry-after": self.retry_after} if self.retry_after and status == 429 else {}
                    return Reply(status=status, message=f"injected fault {status}", headers=headers)
                draw -= rate
        if request.wire == "unknown":
            return Reply(status=404, message=f"no chat endpoint at {request.method} {request.path}")
        answer = self.reply(request)
        return Reply(text=answer) if isinstance(answer, str) else answer

    def _finish(
        self, connection: _Connection, drop: bool, status: int, headers: dict[str, str], body: bytes
    ) -> None:
        self.in_flight -= 1
        self.last_response_at = time.monotonic()
        connection.pending = None
        if drop:
            connection.abort()
        else:
            connection.respond(status, headers, body)

    def _control(self, connection: _Connection, request: ChatRequest) -> None:
        if request.path == "/_stats":
            connection.respond(200, {}, json.dumps(self.stats()).encode())
        elif request.path == "/_reset" and request.method == "POST":
            self.reset()
            connection.respond(200, {}, b"{}")
        else:
            connection.respond(404, {}, b'{"error": {"message": "unknown control path"}}')


def _normalise(request: ChatRequest) -> None:
    """Fill wire, json, model and [{role, content}] messages from the raw request."""
    path = request.path.split("?", 1)[0]
    try:
        data = json.loads(request.body) if request.body else None
    except ValueError:
        data = None
    request.json = data
    if not isinstance(data, dict) or request.method != "POST":
        return
    if path.endswith("/chat/completions"):
        request.wire = "openai"
        request.model = data.get("model")
        request.messages = [
            {"role": m.get("role", ""), "content": m.get("content") or ""} for m in data.get("messages", [])
        ]
    elif path.endswith("/v1/messages"):
        request.wire = "anthropic"
        request.model = data.get("model")
        system = data.get("system")
        request.messages = [{"role": "system", "content": system}] if system else []
        for m in data.get("messages", []):
            content = m.get("content")
            if isinstance(content, list):
                content = "".join(block.get("text", "") for block in content)
            request.messages.append({"role": m.get("role", ""), "content": content or ""})
    elif path.endswith(":generateContent"):
        request.wire = "gemini"
        request.model = path.rsplit("/", 1)[-1].split(":", 1)[0]
        system = data.get("systemInstruction") or {}
        text = "".join(part.get("text", "") for part in system.get("parts", []))
        request.messages = [{"role": "system", "content": text}] if text else []
        for c in data.get("contents", []):
            role = "assistant" if c.get("role") == "model" else c.get("role", "user")
            text = "".join(part.get("text", "") for part in c.get("parts", []))
            request.messages.append({"role": role, "content": text})


def _render(request: ChatRequest, reply: Reply) -> tuple[int, dict[str, str], bytes]:
    """The status, headers and body of `reply` in the request's wire shape."""
    if reply.json is not None:
        return reply.status, reply.headers, json.dumps(reply.json).encode()
    if reply.status >= 400:
        error = _error_body(request.wire, reply.status, reply.message or _REASONS.get(reply.status, "error"))
        return reply.status, reply.headers, json.dumps(error).encode()
    input_tokens = reply.input_tokens
    if input_tokens is None:
        input_tokens = max(1, sum(len(m["content"]) for m in request.messages) // 4)
    output_tokens = reply.output_tokens if reply.output_tokens is not None else max(1, len(reply.text) // 4)
    if request.wire == "anthropic":
        body: dict[str, Any] = {
            "id": "msg_local",
            "type": "message",
            "role": "assistant",
            "model": request.model,
            "content": [{"type": "text", "text": reply.text}],
            "stop_reason": reply.finish_reason or "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        }
    elif request.wire == "gemini":
        body = {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": reply.text}]},
                    "finishReason": reply.finish_reason or "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {
                "promptTokenCount": input_tokens,
                "candidatesTokenCount": output_tokens,
                "totalTokenCount": input_tokens + output_tokens,
            },
            "modelVersion": request.model,
        }
    else:
        body = {
            "id": "chatcmpl-local",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.text},
                    "finish_reason": reply.finish_reason or "stop",
                }
            ],
            "usage": {
                "prompt_tokens": input_tokens,
                "completion_tokens": output_tokens,
                "total_tokens": input_tokens + output_tokens,
            },
        }
    return reply.status, reply.headers, json.dumps(body).encode()


def _error_body(wire: str, status: int, message: str) -> dict[str, Any]:
    if wire == "anthropic":
        kind = _ANTHROPIC_ERROR_TYPES.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    if wire == "gemini":
        status_name = _GEMINI_STATUSES.get(status, "INTERNAL")
        return {"error": {"code": status, "message": message, "status": status_name}}
    kind = "invalid_request_error" if status < 500 else "server_error"
    return {"error": {"message": message, "type": kind, "code": None}}


class _Connection(asyncio.Protocol):
    """HTTP/1.1 with keep-alive and Content-Length bodies: all an HTTP client library sends here."""

    def __init__(self, server: ChatServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.keep_alive = True
        self.pending: asyncio.TimerHandle | None = None  # the answer in the works (stop_on_disconnect)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server._connections.add(transport)
        self.server.connections_opened += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.server._connections.discard(self.transport)
        self.transport = None
        if self.pending is not None:  # the client left: the server stops working on its request
            self.pending.cancel()
            self.pending = None
            self.server.in_flight -= 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            method, path, _version = head[0].split(" ", 2)
            headers = {}
            for line in head[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            self.keep_alive = headers.get("connection", "").lower() != "close"
            request = ChatRequest(method, path, headers, body, time.monotonic())
            self.server._handle(self, request)

    def respond(self, status: int, headers: dict[str, str], body: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", "content-type: application/json"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"content-length: {len(body)}")
        if not self.keep_alive:
            lines.append("connection: close")
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        if not self.keep_alive:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


def _parse_fault(text: str) -> tuple[int, float]:
    status, _, rate = text.partition("=")
    return int(status), float(rate)


async def _serve(args: argparse.Namespace) -> None:
    server = ChatServer(
        REPLIES[args.reply],
        latency=args.latency,
        host=args.host,
        port=args.port,
        record=False,
        fault_rates=dict(args.fault),
        retry_after=args.retry_after,
        seed=args.seed,
    )
    await server.astart()
    print(json.dumps({"port": server.port, "url": server.url}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.astop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A local chat-model server (OpenAI, Anthropic, Gemini).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on stdout)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument(
        "--fault", type=_parse_fault, action="append", default=[], help="STATUS=RATE, e.g. 429=0.2 (repeats)"
    )
    parser.add_argument("--retry-after", default=None, help="Retry-After header sent with injected 429s")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reply", choices=sorted(REPLIES), default="echo", help="judge: see judge()")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
