"""The command line's exit-code contract for failures that are not the model's."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, run_cli

CRASHING_VALIDATE = """
import sys
import benchgate.interfaces.cli as cli

def crash(path):
    raise ZeroDivisionError("simulated bug")

cli.load_request = crash
sys.argv = ["benchgate", "validate", "request.yaml"]
cli.main()
"""


def test_an_unexpected_crash_exits_4_with_its_traceback_never_1() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CRASHING_VALIDATE], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 4
    assert "ZeroDivisionError: simulated bug" in result.stderr
    assert "internal error (exit 4)" in result.stderr


def test_a_user_error_exits_2_with_one_message_and_no_traceback(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchgate", "validate", str(tmp_path / "missing.yaml")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "cannot read" in result.stderr and "Traceback" not in result.stderr


HEAVY = ("prefect", "pandas", "pyarrow", "numpy", "scipy", "nltk", "rouge_score", "datasets")
VALIDATE = """
from benchgate.interfaces.cli import app
try:
    app(["validate", "examples/quickstart.yaml"])
except SystemExit as exit:
    assert exit.code in (0, None), exit.code
"""


def top_level_modules_after(code: str) -> set[str]:
    """The top-level packages a fresh interpreter has loaded once `code` ran."""
    listing = "\nimport sys\nprint(sorted({name.split('.')[0] for name in sys.modules}))\n"
    result = subprocess.run(
        [sys.executable, "-c", code + listing], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return set(result.stdout.strip().splitlines()[-1].strip("[]").replace("'", "").split(", "))


def test_validate_imports_only_what_validation_needs() -> None:
    """Start-up: validating a request must not pay for Prefect, pandas, Arrow or the ROUGE stack."""
    loaded = top_level_modules_after(VALIDATE)
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def http_model_request(path: Path, params: dict[str, object]) -> Path:
    """A request whose one model is served over HTTP (openai-compatible), with `params`."""
    model = {
        "id": "served",
        "provider": "openai-compatible",
        "model": "m",
        "base_url": "http://127.0.0.1:9/v1",
    }
    tasks = [{"task": "question-answering", "dataset": "squad-v2", "limit": 5}]
    path.write_text(
        json.dumps({"name": "http model", "models": [{**model, "params": params}], "tasks": tasks})
    )
    return path


def test_checking_a_request_for_an_http_model_leaves_its_transport_to_the_generation_process(
    tmp_path: Path,
) -> None:
    """The command reads the provider's class (its reserved params, its base URL) and sends nothing:
    aiohttp and its TLS context (0.15-0.25 s), and httpx for the Prefect-held limits (0.05 s), are
    imported by the process that sends, not before it is forked. The reserved params are still checked."""
    valid = http_model_request(tmp_path / "valid.json", {"temperature": 0})
    loaded = top_level_modules_after(VALIDATE.replace("examples/quickstart.yaml", str(valid)))
    assert "benchgate" in loaded, sorted(loaded)
    assert not {"yarl", "aiohttp", "httpx"} & loaded, sorted(loaded)

    reserved = http_model_request(tmp_path / "reserved.json", {"messages": []})
    result = run_cli(["validate", str(reserved)], dict(os.environ), timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "models[0].params.messages: set by the openai-compatible provider itself" in result.stderr


def test_the_run_path_does_not_import_pandas_before_the_first_request() -> None:
    """Start-up: pandas (0.25 s) is imported in a thread once the first requests are out."""
    loaded = top_level_modules_after("import benchgate.interfaces.cli, flows.benchmark")
    assert "prefect" in loaded and "pandas" not in loaded


WRITE_EXAMPLES = """
from benchgate.spec.example import Example
from benchgate.store import Store
store = Store({root!r})
messages = [[{{"role": "user", "content": f"é ☃ {{i}}"}}] for i in range(250)]
examples = [Example(f"q{{i}}", messages[i], [f"a{{i}}"], {{"n": i}}) for i in range(250)]
assert store.write_examples("digest", examples, 100) == 250
with store.open_examples("digest") as stored:
    assert stored.read_group(2) == examples[200:], stored.read_group(2)[:2]
"""


def test_a_new_stores_examples_file_is_written_and_read_without_pandas(tmp_path: Path) -> None:
    """Start-up on a new store: the examples file is made before the first request, and pyarrow
    imports pandas (0.25 s) for any conversion from Python objects, so the file is built from buffers."""
    loaded = top_level_modules_after(WRITE_EXAMPLES.format(root=str(tmp_path)))
    assert "pyarrow" in loaded and "pandas" not in loaded


EXIT_HANDLERS = """
import atexit, sys, threading, time
import benchgate.interfaces.cli as cli

def late_writer():  # as Prefect's: a thread with work left, and an exit handler waiting for it
    time.sleep(0.5)
    open("late.txt", "w").write("sent")

def command(path):
    worker = threading.Thread(target=late_writer)
    worker.start()
    atexit.register(lambda: open("handler.txt", "w").write("ran"))
    print("x" * 200_000)  # more than a pipe holds
    print("the last line")  # left in the buffer: it must be flushed before the process ends
    raise cli.ConfigurationError("stop here")

cli.load_request = command
sys.argv = ["benchgate", "validate", "request.yaml"]
cli.main()
"""


def test_the_command_exits_without_teardown_after_every_thread_and_exit_handler(tmp_path: Path) -> None:
    """main() leaves by os._exit, but only after Python joined the threads and ran the exit handlers."""
    buffered_env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    buffered_env["PYTHONPATH"] = str(REPO_ROOT)
    result = subprocess.run(
        [sys.executable, "-c", EXIT_HANDLERS],
        cwd=tmp_path,
        env=buffered_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "stop here" in result.stderr
    assert result.stdout == "x" * 200_000 + "\nthe last line\n"
    assert (tmp_path / "late.txt").read_text() == "sent"
    assert (tmp_path / "handler.txt").read_text() == "ran"


def test_run_setup_is_kept_out_of_the_collector_which_is_back_on_even_when_setup_fails() -> None:
    from benchgate.interfaces.cli import _kept_out_of_gc
    from benchgate.run.generator_process import RUN_GC_THRESHOLDS

    frozen_before, thresholds = gc.get_freeze_count(), gc.get_threshold()
    try:
        with pytest.raises(RuntimeError), _kept_out_of_gc():
            assert not gc.isenabled()
            setup = [[object()] for _ in range(1000)]  # long-lived, tracked objects made during set-up
            raise RuntimeError("the request is invalid")
        assert gc.isenabled()
        assert gc.get_freeze_count() >= frozen_before + len(setup)
        assert gc.get_threshold() == RUN_GC_THRESHOLDS
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
