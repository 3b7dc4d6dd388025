"""Where the recorded fixtures are (tests/fixtures/imports, made by bench/record_import_fixtures.py).

File names carry the time of recording, so they are found by pattern; what the reply rule makes each
model get wrong is spelled out here once, from the fixtures' README.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from benchgate.imports.inspect_ai import _member
from tests.conftest import REPO_ROOT

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "imports"
LM_EVAL = FIXTURES / "lm_eval" / "output"
INSPECT = FIXTURES / "inspect" / "logs"
MODELS = ("baseline-model", "candidate-model")
INSPECT_MODEL = "openai-api/local/{}"
ITEMS = 30

# Item i asks i plus something: the reply rule's wrong answers, and the candidate's verbose right ones.
BASELINE_WRONG = {i for i in range(ITEMS) if i % 10 == 7}
CANDIDATE_WRONG = {i for i in range(ITEMS) if i % 3 == 0}
CANDIDATE_VERBOSE = {i for i in range(ITEMS) if i % 3 != 0 and i % 5 == 4}


def lm_eval_files(model: str) -> tuple[Path, Path]:
    """(samples, results) that lm-eval wrote for the model."""
    (samples,) = (LM_EVAL / model).glob("samples_arithmetic_local_*.jsonl")
    (results,) = (LM_EVAL / model).glob("results_*.json")
    return samples, results


def lm_eval_results(model: str) -> dict:
    return json.loads(lm_eval_files(model)[1].read_text())


def inspect_eval_logs() -> list[Path]:
    return sorted(INSPECT.glob("*.eval"))


def inspect_eval_log(model: str) -> Path:
    """The .eval log of `baseline-model` or `candidate-model` (its header names the model)."""
    for log in inspect_eval_logs():
        with zipfile.ZipFile(log) as archive:
            if _member(log, archive, "header.json")["eval"]["model"] == INSPECT_MODEL.format(model):
                return log
    raise LookupError(model)


def inspect_json_log() -> Path:
    (log,) = INSPECT.glob("*.json")
    return log
