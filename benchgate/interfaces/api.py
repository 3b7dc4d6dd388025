"""The HTTP API: submit a request, read its report; bearer-token auth, 127.0.0.1 by default.

A submission runs through a Prefect deployment when one is configured (workers pick it up), otherwise
in a process pool of this server, so a benchmark never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import multiprocessing
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from benchgate.errors import BenchgateError, ConfigurationError, RequestError
from benchgate.interfaces.api_runs import (
    ID_PATTERN,
    UNFINISHED,
    DeploymentRunner,
    ProcessPoolRunner,
    Runner,
    Submissions,
)
from benchgate.report.build import new_benchmark_id
from benchgate.run.policy import Policy, configured_policy, request_check
from benchgate.run.validation import parse_request
from benchgate.settings import quiet_prefect
from benchgate.spec.base import field_path
from benchgate.spec.files import decode_structured
from benchgate.store import Store

MAX_BODY_BYTES = 1 << 20
BEARER = HTTPBearer(auto_error=False)
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]


# The request document (see README "The request"); validated by benchgate, not by FastAPI.
REQUEST_BODY: dict[str, Any] = {"schema": {"type": "object", "title": "BenchmarkRequest"}}


@dataclass
class ApiSettings:
    token: str | None
    store_url: str | None = None
    deployment: str | None = None
    processes: int = 2
    max_body_bytes: int = MAX_BODY_BYTES
    policy: Policy | None = None  # None: the file BENCHGATE_POLICY names, else the safe defaults


def check_bind(host: str, token: str | None, no_auth_local: bool) -> None:
    """Without a token the API may only listen on loopback, and only when asked to explicitly."""
    if token:
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not (no_auth_local and loopback):
        raise ConfigurationError(
            "BENCHGATE_API_TOKEN is not set: set it, or run on 127.0.0.1 with --no-auth-local for local use"
        )


def run_benchmark_in_process(request: dict[str, Any], benchmark_id: str, store_url: str) -> int:
    """The process pool's job: the benchmark flow, as `benchgate run` would run it."""
    quiet_prefect()
    from flows.benchmark import benchmark

    result = asyncio.run(benchmark(request, benchmark_id=benchmark_id, store_url=store_url))
    return int(result["exit_code"])


class BodyLimit:
    """Refuses bodies over the limit with 413, whether or not the client sent Content-Length."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await _too_large(self.limit)(scope, receive, send)
            return
        received, refused = 0, False

        async def limited() -> Message:
            nonlocal received, refused
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit and not refused:
                refused = True  # answer now; the app sees a disconnect and whatever it sends is dropped
                await _too_large(self.limit)(scope, receive, send)
                return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, limited, guarded)


def _invalid(problems: list[str]) -> JSONResponse:
    return JSONResponse({"detail": "invalid request", "problems": problems}, status_code=422)


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse({"detail": f"request body larger than {limit} bytes"}, status_code=413)


def create_app(settings: ApiSettings, runner: Runner | None = None) -> FastAPI:
    """`runner` defaults to the deployment (if configured) or a process pool; tests may pass their own."""
    store = Store(settings.store_url)
    store_url = store.root if store.is_local else store.url  # runs elsewhere need an absolute location
    submissions = Submissions(store)
    expected = (settings.token or "").encode()
    # A caller holds only a token: what its requests may read, call and sign is the operator's policy.
    check = request_check(settings.policy or configured_policy() or Policy(), store_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if runner is not None:
            yield
        elif settings.deployment:
            app.state.runner = DeploymentRunner(settings.deployment)
            yield
        else:
            context = multiprocessing.get_context("spawn")  # no fork of a process with threads and a loop
            with ProcessPoolExecutor(settings.processes, mp_context=context) as executor:
                app.state.runner = ProcessPoolRunner(executor, run_benchmark_in_process, submissions)
                yield

    app = FastAPI(title="benchgate", version="1", lifespan=lifespan)
    app.state.runner = runner  # set here too: ASGI test clients may skip the lifespan
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)

    def authorized(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]) -> None:
        if not expected:
            return
        given = credentials.credentials.encode() if credentials else b""
        if not hmac.compare_digest(given, expected):
            raise HTTPException(
                401, "missing or invalid bearer token", headers={"WWW-Authenticate": "Bearer"}
            )

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = [f"{field_path(tuple(e['loc']))}: {e['msg']}" for e in error.errors()]
        return JSONResponse({"detail": "invalid request", "problems": problems}, status_code=422)

    @app.get("/v1/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(
        "/v1/benchmarks",
        status_code=202,
        dependencies=[Depends(authorized)],
        response_model=None,  # 202 {benchmarkId, status}, or the 422 JSONResponse of an invalid request
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": REQUEST_BODY}}},
    )
    async def submit(request: Request) -> dict[str, str] | JSONResponse:
        """The body is decoded here, strictly (no repeated keys, bounded nesting), not by FastAPI."""
        try:
            body = decode_structured(
                (await request.body()).decode("utf-8", errors="strict"), is_json=True, source="request body"
            )
            parsed = await run_in_threadpool(partial(parse_request, body, check=check))
        except UnicodeDecodeError:
            return JSONResponse(
                {"detail": "invalid request", "problems": ["(body): not UTF-8"]}, status_code=422
            )
        except RequestError as error:
            return JSONResponse({"detail": "invalid request", "problems": error.problems}, status_code=422)
        benchmark_id = new_benchmark_id()
        submissions.mark_queued(benchmark_id, parsed.name)
        active: Runner = request.app.state.runner
        try:
            info = await active.start(benchmark_id, parsed.model_dump(mode="json"), store_url)
        except Exception as error:  # the orchestrator refused: the caller may retry later
            submissions.mark_failed(benchmark_id, parsed.name, f"could not start: {error}")
            raise HTTPException(503, f"could not start the benchmark: {type(error).__name__}") from None
        submissions.record(benchmark_id, parsed.name, {"mode": active.mode, **info})
        return {"benchmarkId": benchmark_id, "status": "queued"}

    @app.get("/v1/benchmarks", dependencies=[Depends(authorized)])
    async def recent(limit: Annotated[int, Query(ge=1, le=200)] = 20) -> dict[str, list[dict[str, Any]]]:
        items = []
        for submission in await run_in_threadpool(submissions.recent, limit):
            try:
                report = store.read_report(submission["benchmarkId"]) or {}
            except BenchgateError:  # one corrupt report must not hide everyone's benchmarks
                report = {"status": "unreadable"}
            items.append(
                {
                    "benchmarkId": submission["benchmarkId"],
                    "name": submission["name"],
                    "status": report.get("status", "queued"),
                    "submittedAt": submission["submittedAt"],
                    "completedAt": report.get("completedAt"),
                    "gate": (report.get("gate") or {}).get("decision"),
                }
            )
        return {"benchmarks": items}

    @app.get("/v1/benchmarks/{benchmark_id}", dependencies=[Depends(authorized)])
    async def read(
        request: Request, benchmark_id: Annotated[str, Path(pattern=ID_PATTERN)]
    ) -> dict[str, Any]:
        try:
            report = await run_in_threadpool(store.read_report, benchmark_id)
        except BenchgateError:  # caught mid-write by a store without atomic rename: still running
            return {"benchmarkId": benchmark_id, "status": "running"}
        if report is None:
            raise HTTPException(404, f"no benchmark {benchmark_id}")
        submission = submissions.read(benchmark_id)
        active: Runner = request.app.state.runner
        if (
            report["status"] in UNFINISHED
            and submission is not None
            and submission.get("mode") == active.mode
        ):
            reason = await active.died(submission)
            if reason is not None and (store.read_report(benchmark_id) or {}).get("status") in UNFINISHED:
                report = submissions.mark_failed(benchmark_id, report["name"], reason)
        return report

    return app
