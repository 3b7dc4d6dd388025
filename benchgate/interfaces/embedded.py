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

On Linux the server process is forked from the client once the client has imported Prefect's core
(which both need): the server imports only its own part, which saves 0.8 s of CPU of every cold run
without starting it later (a fresh interpreter spent that time importing the same core). Elsewhere
(macOS: system frameworks are not safe to use in a forked child) it is a fresh interpreter.
"""

from __future__ import annotations

import gc
import http.client
import os
import signal
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import NoReturn

import toml  # type: ignore[import-untyped]

from benchgate.errors import ConfigurationError

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
FORK_SERVER = sys.platform == "linux"  # macOS: system frameworks are not safe to use in a forked child


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


def _serve_forked(port: int, parent: int) -> NoReturn:
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
        serve(port)
    except BaseException:
        traceback.print_exc()
        status = 1
    finally:
        sys.stderr.flush()
        os._exit(status)  # not the client's exit handlers, nor its buffered output a second time


def serve(port: int) -> None:
    """The server process: Prefect's API app under uvicorn, as Prefect's temporary server runs it.

    The app is built with the cyclic garbage collector off, then frozen: importing the server makes
    a few hundred thousand objects that live as long as the process, and scanning them as they
    arrive was a fifth of its start-up.
    """
    gc.disable()
    import uvicorn
    from prefect.server.api.server import create_app

    app = create_app()
    gc.freeze()
    gc.enable()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", lifespan="on")


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
        self.port = _free_port()
        os.environ["PREFECT_API_URL"] = self.api_url  # before Prefect is imported: it reads it then
        # The server is this process's own Prefect: asking its version (a TLS context and a request
        # by the events client) cannot find a mismatch.
        os.environ["PREFECT_CLIENT_SERVER_VERSION_CHECK_ENABLED"] = "false"
        if not FORK_SERVER:
            env = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
            command = [sys.executable, "-m", "benchgate.interfaces.embedded", str(self.port)]
            stdin = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)]
            self.pid = os.posix_spawn(sys.executable, command, {**env, **SERVER_ENV}, file_actions=stdin)
            return
        _shared_imports()
        sys.stdout.flush()
        sys.stderr.flush()
        parent = os.getpid()
        pid = os.fork()  # no thread runs yet: the client starts its first ones after this
        if pid == 0:
            _serve_forked(self.port, parent)
        self.pid = pid

    def _running(self) -> bool:
        if self.pid is None:
            return False
        if os.waitpid(self.pid, os.WNOHANG) == (0, 0):
            return True
        self.pid = None  # exited and reaped
        return False

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT_SECONDS) -> None:
        """Return once the server answers /health (Prefect is imported by then: the URL cannot change)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._running():
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5.0)
            try:  # http.client, not httpx: no TLS context to build (a tenth of a second) for a local probe
                connection.request("GET", "/api/health")
                if connection.getresponse().status == 200:
                    return
            except OSError:
                pass
            finally:
                connection.close()
            time.sleep(0.05)
        self.stop()
        raise ConfigurationError(
            "the temporary Prefect server did not start; run `prefect server start` and set PREFECT_API_URL"
        )

    def stop(self) -> None:
        """Send the run's queued logs while the server still listens, then stop it."""
        pid = self.pid
        if pid is None or not self._running():
            return
        if "prefect.logging.handlers" in sys.modules:  # a flow ran: its log worker may hold records
            from prefect.logging.handlers import APILogHandler

            APILogHandler().flush()
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while self._running() and time.monotonic() < deadline:
            time.sleep(0.02)
        if self._running():
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            self.pid = None


if __name__ == "__main__":
    serve(int(sys.argv[1]))
