"""The command line's exit-code contract for failures that are not the model's."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO_ROOT

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
VALIDATE_AND_LIST_MODULES = """
import sys
from benchgate.interfaces.cli import app
try:
    app(["validate", "examples/quickstart.yaml"])
except SystemExit as exit:
    assert exit.code in (0, None), exit.code
print(sorted({name.split(".")[0] for name in sys.modules}))
"""


def test_validate_imports_only_what_validation_needs() -> None:
    """Start-up: validating a request must not pay for Prefect, pandas, Arrow or the ROUGE stack."""
    result = subprocess.run(
        [sys.executable, "-c", VALIDATE_AND_LIST_MODULES],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    loaded = set(result.stdout.strip().splitlines()[-1].strip("[]").replace("'", "").split(", "))
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))
