"""The temporary Prefect server of `benchgate run` when none is configured, started as early as it can.

Without a server, Prefect starts its own temporary one on the first flow call: the run waits for it
(seconds of start-up, most of it the server importing itself) after paying for importing the server
in the client too, and that server runs services a run of minutes never uses. Started here, as the
first thing the command does after forking its generation process, the server boots in its own
process while the client imports the benchmark's modules and the model answers its first requests
(benchgate/run/generator_process.py). It records into the same database (PREFECT_HOME) as Prefect's
own temporary server, with the services of a temporary server minus those that react to or stream
events (no automation or UI subscriber can be attached to a server that lives as long as one run).
Flow runs, task runs, logs and artifacts are recorded as ever; events are not persisted.

It stops as soon as the run is recorded (`EmbeddedServer.stop`, `_serve_until_stopped`): uvicorn's own
stop, made for servers whose clients are still connected, took 0.17 s of every embedded run.

On Linux the server process is forked from the client once the client has imported Prefect's core
(which both need): the server imports only its own part, which saves 0.8 s of CPU of every cold run
without starting it later (a fresh interpreter spent that time importing the same core). Elsewhere
(macOS: system frameworks are not safe to use in a forked child) it is a fresh interpreter.
"""

from __future__ import annotations

import asyncio
import gc
import http.client
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import toml  # type: ignore[import-untyped]

from benchgate.errors import ConfigurationError

if TYPE_CHECKING:
    from fastapi import FastAPI

SERVER_ENV = {
    "PREFECT_UI_ENABLED": "false",
    "PREFECT__SERVER_EPHEMERAL": "1",  # as Prefect's temporary server: only the services it runs
    "PREFECT__SERVER_FINAL": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_LOGGING_LEVEL": "CRITICAL",
    "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED": "false",
    "PREFECT_SERVER_EVENTS_STREAM_OUT_ENABLED": "false",
}
STARTUP_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 10.0
# How long the run's last task run may take to appear as final once the run is over: the server
# records task runs from the events the client sent, a few tens of milliseconds behind.
RECORDED_TIMEOUT_SECONDS = 2.0
# Without a task run to wait for (the flow failed), as long as uvicorn's own stop gave the recorder.
UNRECORDED_GRACE_SECONDS = 0.2
FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}
BACKLOG = 2048  # uvicorn's
FORK_SERVER = sys.platform == "linux"  # macOS: system frameworks are not safe to use in a forked child


def _listen() -> socket.socket:
    """The server's socket, listening before the server exists: the client's first requests wait in
    its backlog until the server serves them (no polling), and no other process can take the port
    between choosing it and binding it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(BACKLOG)
    return listener


def _profile() -> dict[str, object]:
    """The active Prefect profile's settings, read without importing Prefect (a second of CPU)."""
    home = Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()
    path = Path(os.environ.get("PREFECT_PROFILES_PATH", home / "profiles.toml")).expanduser()
    try:
        contents = toml.loads(path.read_text())
    except (OSError, toml.TomlDecodeError):
        return {}
    active = os.environ.get("PREFECT_PROFILE") or contents.get("active") or "ephemeral"
    profile = contents.get("profiles", {}).get(active, {})
    return profile if isinstance(profile, dict) else {}


def _project_configures_prefect() -> bool:
    """prefect.toml, .env or pyproject.toml's [tool.prefect] in the working directory may name a server."""
    cwd = Path.cwd()
    if (cwd / "prefect.toml").exists() or (cwd / ".env").exists():
        return True
    pyproject = cwd / "pyproject.toml"
    return pyproject.exists() and "[tool.prefect" in pyproject.read_text(errors="replace")


def _shared_imports() -> None:
    """What both the client and the server import: imported once, before the fork (0.8 s of CPU).
    FastAPI is the server's alone: the client records its flows' parameters without it
    (flows/json_flow.py)."""
    import jinja2  # noqa: F401  (the client's prompt templates)
    import prefect  # noqa: F401


def _serve_forked(listener: socket.socket, parent: int) -> NoReturn:
    """The server in the forked child: never returns into the client's code, whatever happens."""
    status = 0
    try:
        from benchgate.run.generator_process import die_with_parent

        die_with_parent(parent)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.environ.pop("PREFECT_API_URL", None)
        os.environ.update(SERVER_ENV)
        from prefect.context import refresh_global_settings_context

        refresh_global_settings_context()  # Prefect read the client's settings when it was imported
        # Python's own 5 ms, not the 1 ms the command may have set for itself and its generation
        # process (RUN_SWITCH_INTERVAL): the server's threads boot it busy (4 alternating cold runs
        # each: 9.8 against 10.4 CPU-s for the whole run, medians).
        sys.setswitchinterval(0.005)
        serve(listener)
    except BaseException:
        traceback.print_exc()
        status = 1
    finally:
        sys.stderr.flush()
        os._exit(status)  # not the client's exit handlers, nor its buffered output a second time


def serve(listener: socket.socket) -> None:
    """The server process: Prefect's API app, served by uvicorn, as Prefect's temporary server runs it,
    until SIGTERM (from the run, or the kernel when the run dies).

    The app is built with the cyclic garbage collector off, then frozen: importing the server makes
    a few hundred thousand objects that live as long as the process, and scanning them as they
    arrive was a fifth of its start-up. It serves on a thread of its own: this thread takes the
    signal that stops it.
    """
    gc.disable()
    from prefect.server.api.server import create_app

    from benchgate.run.generator_process import event_loop_runner

    app = create_app()
    gc.freeze()
    gc.enable()
    stop = _StopRequest()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the run's to handle: it stops us
    signal.signal(signal.SIGTERM, stop.request)
    serving = threading.Thread(
        target=event_loop_runner(), args=(_serve_until_stopped(app, listener, stop),), name="prefect-server"
    )
    serving.start()
    serving.join()


class _StopRequest:
    """A stop asked for by a signal, handed to the server's event loop on its own thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requested = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None

    def request(self, *_: object) -> None:
        with self._lock:
            self._requested = True
            if self._loop is not None and self._stopped is not None:
                self._loop.call_soon_threadsafe(self._stopped.set)

    async def wait(self) -> None:
        stopped = asyncio.Event()
        with self._lock:
            if self._requested:
                return
            self._loop, self._stopped = asyncio.get_running_loop(), stopped
        await stopped.wait()


async def _serve_until_stopped(app: FastAPI, listener: socket.socket, stop: _StopRequest) -> None:
    """Serve until stopped, then stop Prefect's services, which write what they hold.

    uvicorn notices a stop at its next tick (every 0.1 s), waits 0.1 s more, then for each connection
    to close. When the run stops this server, its client has had every answer, sent its logs, and
    seen its last task run recorded (`EmbeddedServer.stop`): nothing is left to wait for. So Prefect's
    lifespan is run here, not by uvicorn, and uvicorn, on a thread that takes no signals, is only
    ever started."""
    import uvicorn

    config = uvicorn.Config(app, log_level="error", lifespan="off", backlog=BACKLOG)
    async with app.router.lifespan_context(app):
        serving = asyncio.ensure_future(uvicorn.Server(config).serve(sockets=[listener]))
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait([serving, stopping], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if serving.done():
            serving.result()  # uvicorn could not start (its SystemExit)
        serving.cancel()


class EmbeddedServer:
    """The temporary Prefect server of a run, in a process of its own (`serve`)."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.port = 0

    @classmethod
    def start_if_unconfigured(cls) -> EmbeddedServer | None:
        """Start one, and point this process at it, unless the environment names a Prefect server,
        disables the temporary one, or configures Prefect in a way only Prefect reads (then Prefect
        decides, as without benchgate)."""
        settings = {**_profile(), **os.environ}
        if "PREFECT_API_URL" in settings or _project_configures_prefect():
            return None
        if str(settings.get("PREFECT_SERVER_EPHEMERAL_ENABLED", "true")).lower() in ("false", "0"):
            return None
        server = cls()
        server._spawn()
        return server

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def _spawn(self) -> None:
        listener = _listen()
        self.port = int(listener.getsockname()[1])
        os.environ["PREFECT_API_URL"] = self.api_url  # before Prefect is imported: it reads it then
        # The server is this process's own Prefect: asking its version (a TLS context and a request
        # by the events client) cannot find a mismatch.
        os.environ["PREFECT_CLIENT_SERVER_VERSION_CHECK_ENABLED"] = "false"
        # The listening socket is the server's alone once it runs: if it dies, the client's waiting
        # requests are refused, not left in a backlog nobody reads.
        with listener:
            if not FORK_SERVER:
                env = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
                listener.set_inheritable(True)
                command = [sys.executable, "-m", "benchgate.interfaces.embedded", str(listener.fileno())]
                stdin = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)]
                self.pid = os.posix_spawn(sys.executable, command, {**env, **SERVER_ENV}, file_actions=stdin)
                return
            _shared_imports()
            sys.stdout.flush()
            sys.stderr.flush()
            parent = os.getpid()
            pid = os.fork()  # no thread runs yet: the client starts its first ones after this
            if pid == 0:
                _serve_forked(listener, parent)
            self.pid = pid

    def _running(self) -> bool:
        if self.pid is None:
            return False
        if os.waitpid(self.pid, os.WNOHANG) == (0, 0):
            return True
        self.pid = None  # exited and reaped
        return False

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT_SECONDS) -> None:
        """Return once the server answers /health (Prefect is imported by then: the URL cannot change).
        The request waits in the socket's backlog until the server serves."""
        if self._poll("/api/health", timeout, 0.05, lambda status, _: status == 200):
            return
        self.stop()
        raise ConfigurationError(
            "the temporary Prefect server did not start; run `prefect server start` and set PREFECT_API_URL"
        )

    def stop(self, last_task_run: str | None = None) -> None:
        """Send the run's queued logs while the server still listens, wait until it has recorded the
        run's last task run (its task runs are recorded in the order they were sent), then stop it."""
        pid = self.pid
        if pid is None or not self._running():
            return
        flushing = None
        if "prefect.logging.handlers" in sys.modules:  # a flow ran: its log worker may hold records
            from prefect.logging.handlers import APILogHandler

            # sent while the server records the last task run: one wait for both, not one after the other
            flushing = threading.Thread(target=APILogHandler().flush, name="benchgate-flush-logs")
            flushing.start()
        if last_task_run is None:
            time.sleep(UNRECORDED_GRACE_SECONDS)
        else:
            self._wait_recorded(last_task_run)
        if flushing is not None:
            flushing.join()
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while self._running() and time.monotonic() < deadline:
            time.sleep(0.005)
        if self._running():
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            self.pid = None

    def _wait_recorded(self, task_run: str) -> None:
        """Until the server shows `task_run` in a final state (or it stops, or a timeout)."""

        def final(status: int, body: bytes) -> bool:
            state = json.loads(body).get("state") if status == 200 else None
            return state is not None and state.get("type") in FINAL_STATES

        self._poll(f"/api/task_runs/{task_run}", RECORDED_TIMEOUT_SECONDS, 0.005, final)

    def _poll(self, path: str, timeout: float, interval: float, done: Callable[[int, bytes], bool]) -> bool:
        """GET `path` until `done(status, body)`; False if the server stopped or `timeout` passed first."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0 and self._running():
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=left)
            try:  # http.client, not httpx: no TLS context to build (a tenth of a second) for a local probe
                connection.request("GET", path)
                response = connection.getresponse()
                if done(response.status, response.read()):
                    return True
            except (OSError, ValueError):
                pass
            finally:
                connection.close()
            time.sleep(interval)
        return False


if __name__ == "__main__":  # the listening socket's descriptor, inherited
    serve(socket.socket(fileno=int(sys.argv[1])))
