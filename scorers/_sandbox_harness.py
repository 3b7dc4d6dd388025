"""Trusted entry point inside the sandbox; the parent passes this file's source to ``python -I -S -c``.

It is stdlib-only and self-contained because it runs from an interpreter that cannot see this repository.
``[contain UID TMPFS] serve IN OUT LIMITS`` runs a warm worker: control fd IN carries
``<timeout> <size>\\n<program>`` requests, fd OUT ``<clean> <size>\\n<result>`` replies. Each request runs
in a forked child (`run_program`); afterwards every other process of the sandbox is killed and the
scratch space checked. A worker that saw anything left behind (a process, a file) or a timeout answers
``clean=0`` and exits, so the parent starts a fresh sandbox.

``contain`` (the fallback without bubblewrap): util-linux ``unshare`` started this process as the init of
fresh PID, network, IPC, UTS and mount namespaces; `contain` finishes the sandbox from inside before any
program runs (read-only host filesystem, private /tmp and /dev/shm, no capabilities, an unprivileged
uid when started as root). Under bwrap, bwrap has done all of that.

LIMITS: address-space bytes, file-size bytes, processes, open files. See scorers/sandbox.py for the
threat model and what the verdict does and does not guarantee.
"""

import _thread
import builtins
import contextlib
import gc
import math
import os
import re
import resource
import select
import shutil
import signal
import sys
import time
from types import CodeType
from typing import Any

_PRELOAD = ("typing", "math", "re", "collections", "itertools", "functools", "hashlib", "string", "heapq")
_CHILD_GRACE = 0.5
_OUTPUT_CAP = 64 << 10
# Linux ABI numbers for `contain` (mount_setattr has the same syscall number on every architecture).
_SYS_MOUNT_SETATTR, _AT_RECURSIVE, _MOUNT_ATTR_RDONLY, _MOUNT_ATTR_NOSUID = 442, 0x8000, 0x1, 0x2
_MS_NOSUID, _MS_NODEV = 0x2, 0x4
_PR_SET_PDEATHSIG, _PR_CAPBSET_DROP, _PR_SET_NO_NEW_PRIVS = 1, 24, 38
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


_FORBIDDEN_EVENTS: tuple[str, ...] = ("sys._current_frames", "sys.settrace", "sys.setprofile")
_FORBIDDEN_EVENTS += ("gc.get_objects", "gc.get_referrers", "gc.get_referents")


def _execute(code: CodeType, outcome: list[Any], ok: object, fail: object, done: _thread.LockType) -> None:
    """Worker-thread body. ``outcome[1] = fail`` needs no allocation, so a failure always overwrites it."""
    try:
        exec(code, outcome[0])
        outcome[1] = ok
    except BaseException as e:
        outcome[1] = fail
        try:
            outcome[2] = f"failed: {e}"
        except BaseException:
            outcome[2] = "failed: unprintable exception"
    finally:
        done.release()


def run_program(source: bytes, verdict_fd: int, nonce: bytes, timeout: float, limits: list) -> None:
    """Lower this process's limits, run the program, write ``nonce NUL verdict`` and _exit (never returns).

    The program runs in a second thread, so its frames' ``f_back`` chains never reach this frame (which
    holds the nonce); an audit hook (which cannot be removed) refuses the other ways here: other threads'
    frames, gc introspection, ctypes and /proc/*/mem (bwrap mounts no /proc; the fallback's lists only the
    sandbox). It also refuses trace/profile hooks, which could jump over ``assert`` lines.
    """
    as_bytes, fsize_bytes, nproc, nofile = limits
    for limit, value in (
        (resource.RLIMIT_CPU, math.ceil(timeout) + 1),
        (resource.RLIMIT_AS, as_bytes),
        (resource.RLIMIT_FSIZE, fsize_bytes),
        (resource.RLIMIT_NPROC, nproc),
        (resource.RLIMIT_NOFILE, nofile),
        (resource.RLIMIT_CORE, 0),
    ):
        resource.setrlimit(limit, (value, value))

    # Everything used after the program started is bound now: patching os, sys, builtins or this module
    # cannot reach it, and no program code runs on this thread (no patched method, __hash__ or __eq__).
    write, exit_, gc_disable, thread_count, sleep = os.write, os._exit, gc.disable, _thread._count, time.sleep
    len_, any_, type_, str_, isinstance_ = len, any, type, str, isinstance
    realpath, fsdecode, proc_mem, forbidden = (
        os.path.realpath,
        os.fsdecode,
        re.compile(r"/proc/.*/mem").fullmatch,
        _FORBIDDEN_EVENTS,
    )
    error = RuntimeError
    builtins_dict = builtins.__dict__
    builtins_before = dict(builtins_dict)

    def audit(event: str, args: tuple) -> None:
        if event in forbidden or event[:7] == "ctypes.":
            raise error(f"{event} is not allowed in the sandbox")
        if event == "open" and isinstance_(args[0], (str_, bytes)) and proc_mem(realpath(fsdecode(args[0]))):
            raise error("reading process memory is not allowed in the sandbox")

    def report(verdict: str) -> None:
        write(verdict_fd, nonce + b"\0" + verdict.encode("utf-8", "replace")[:2000])
        exit_(0)

    try:
        code = compile(source, "<program>", "exec")
    except BaseException as e:
        report(f"failed: {e}")
    ok, fail, done = object(), object(), _thread.allocate_lock()
    outcome: list = [{}, None, None]
    acquire = done.acquire
    acquire()
    sys.addaudithook(audit)
    _thread.start_new_thread(_execute, (code, outcome, ok, fail, done))
    finished = acquire(timeout=timeout)
    gc_disable()  # no finalizer or gc callback of the program may run on this thread from here on
    if not finished:
        report("timed out")
    for _ in range(200):  # the worker releases `done` just before its thread ends
        if thread_count() == 0:
            break
        sleep(0.001)
    else:  # checked before reading the outcome, so a finished worker has written its last word
        report("failed: the program left threads running")
    status, reason = outcome[1], outcome[2]
    if status is not ok:
        report(reason if type_(reason) is str_ and status is fail else "failed: the program ended abnormally")
    if len_(builtins_dict) != len_(builtins_before) or any_(
        type_(k) is not str_ or builtins_before.get(k, fail) is not v for k, v in builtins_dict.items()
    ):
        report("failed: the program modified builtins")
    program_globals = outcome[0]
    if type_(program_globals) is not dict or any_(
        type_(k) is str_ and k in builtins_before and k[:2] != "__" for k in program_globals
    ):
        report("failed: the program shadowed a builtin at module level")
    report("passed")


def judge(raw: bytes, nonce: bytes, status: int | None, output: bytes) -> str:
    """The result string for one run: its own verdict if well-formed, else why it has none."""
    head, sep, body = raw.partition(b"\0")
    if sep and head == nonce and nonce not in body:
        text = body.decode("utf-8", "replace")
        if text in ("passed", "timed out") or text.startswith("failed: "):
            return text
    if raw:
        return "failed: invalid verdict"
    if status is None:
        return "timed out"
    signum = -status if status < 0 else status - 128 if status > 128 else 0
    if signum == signal.SIGXCPU:
        return "timed out"
    how = f"killed by signal {signum}" if signum else f"exited with status {status}"
    tail = output.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
    return f"failed: program {how} without a verdict {tail[0][:200]}".rstrip()


def _read_exact(fd: int, n: int) -> bytes:
    chunks = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _read_line(fd: int) -> bytes:
    line = b""
    while not line.endswith(b"\n"):
        ch = os.read(fd, 1)
        if not ch:
            raise EOFError
        line += ch
    return line


def _kill_others() -> bool:
    """SIGKILL every other process of the sandbox (kill(-1) spares init and us); True if there were any.

    kill(-1) fails with ESRCH only once nothing else is left, zombies included: bwrap's init reaps them,
    and in the fallback this process is the init that orphans are reparented to, reaped below.
    """
    for attempt in range(10_000):
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            return attempt > 0
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        time.sleep(0.0005)
    raise RuntimeError("processes keep appearing")


def _scratch_clean(workdir: str) -> bool:
    """Remove the run's directory; True iff nothing else was left in /tmp or /dev/shm."""
    shutil.rmtree(workdir, ignore_errors=True)
    return not os.listdir("/tmp") and not (os.path.isdir("/dev/shm") and os.listdir("/dev/shm"))


def _run_child(source: bytes, timeout: float, limits: list) -> tuple:
    """Run one program in a forked child; return its result string and whether the sandbox is still clean."""
    nonce = os.urandom(16).hex().encode()
    workdir = "/tmp/run"
    os.mkdir(workdir, 0o700)
    verdict_r, verdict_w = os.pipe()
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            # The program gets stdin /dev/null, its output pipe, its verdict pipe as fd 3 and nothing else.
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            os.dup2(out_w, 1)
            os.dup2(out_w, 2)
            os.dup2(verdict_w, 3)
            os.closerange(4, 1 << 16)
            os.chdir(workdir)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            run_program(source, 3, nonce, timeout, limits)
        finally:
            os._exit(1)
    os.close(verdict_w)
    os.close(out_w)
    pidfd = os.pidfd_open(pid)
    deadline = time.monotonic() + timeout + _CHILD_GRACE
    verdict, output, status = b"", b"", None
    watch = [verdict_r, out_r, pidfd]
    while status is None and (left := deadline - time.monotonic()) > 0:
        for fd in select.select(watch, [], [], left)[0]:
            if fd == pidfd:
                status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                watch.remove(fd)
            elif fd == verdict_r:
                verdict = (verdict + chunk)[:4096]
            else:
                output = (output + chunk)[-_OUTPUT_CAP:]
    for fd in (verdict_r, out_r):
        os.set_blocking(fd, False)
    with contextlib.suppress(BlockingIOError):
        verdict = (verdict + os.read(verdict_r, 4096))[:4096]
    leftovers = _kill_others()
    for fd in (verdict_r, out_r, pidfd):
        os.close(fd)
    result = judge(verdict, nonce, status, output)
    clean = status is not None and not leftovers and _scratch_clean(workdir)
    return result, clean


def serve(control_in: int, control_out: int, limits: list) -> None:
    """Answer requests until EOF or until a run leaves the sandbox unclean."""
    import ctypes

    # Not dumpable: a program cannot ptrace this worker or open its /proc files (fds, memory).
    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0
    for name in _PRELOAD:
        __import__(name)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        try:
            timeout, size = _read_line(control_in).split()
            source = _read_exact(control_in, int(size))
        except EOFError:
            return
        result, clean = _run_child(source, float(timeout), limits)
        reply = memoryview(b"%d %d\n%s" % (clean, len(result.encode()), result.encode()))
        while reply:
            reply = reply[os.write(control_out, reply) :]
        if not clean:
            return


def contain(uid: int | None, tmpfs_bytes: int) -> None:
    """Finish the fallback sandbox from inside, as root of its fresh mount namespace, before any program.

    The host's mounts become read-only and nosuid (recursively: mount_setattr), /tmp and /dev/shm
    private size-capped tmpfs, so a program can write nothing outside them. Then every capability goes
    (bounding set first, while CAP_SETPCAP is held), and as root the process becomes ``uid``: a fresh
    unprivileged uid, so RLIMIT_NPROC binds and its processes can signal or ptrace nothing of the host.
    no_new_privs keeps setuid binaries from giving anything back. Any failure raises: no half sandbox.
    """
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)

    def check(result: int, what: str) -> None:
        if result != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"{what}: {os.strerror(errno)}")

    attr = (ctypes.c_uint64 * 4)(_MOUNT_ATTR_RDONLY | _MOUNT_ATTR_NOSUID, 0, 0, 0)  # struct mount_attr
    check(
        libc.syscall(_SYS_MOUNT_SETATTR, -100, b"/", _AT_RECURSIVE, attr, ctypes.sizeof(attr)),
        "mount_setattr",
    )
    options = f"size={tmpfs_bytes},mode=1777".encode()
    for path in ("/tmp", "/dev/shm"):
        if os.path.isdir(path):
            check(
                libc.mount(b"tmpfs", path.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, options),
                f"mount {path}",
            )
    cap = 0
    while libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:
        cap += 1
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
    check(libc.capset(header, (ctypes.c_uint32 * 6)()), "capset")
    check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    # The uid change cleared unshare's --kill-child death signal; re-arm it.
    check(libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "pdeathsig")
    os.chdir("/tmp")


def main() -> None:
    args = sys.argv[1:]
    if args[0] == "contain":
        contain(None if args[1] == "-" else int(args[1]), int(args[2]))
        args = args[3:]
    serve(int(args[1]), int(args[2]), [int(a) for a in args[3:7]])


if __name__ == "__main__":
    main()
