"""Record the `benchgate import` fixtures by running lm-evaluation-harness and Inspect AI for real.

The importer tests read logs the tools themselves wrote, never imitations. This script makes them
end to end: a virtualenv per tool outside the repository (pinned versions), the local chat server of
tests/support answering as two models, and each tool run once per model over the same 30 items.
Everything under tests/fixtures/imports/{lm_eval,inspect}/ that a run writes is replaced, and each
folder's README.md records the tool version, the commands, the server's reply rule and the date.

    .venv/bin/python bench/record_import_fixtures.py                # fresh venvs in /tmp
    .venv/bin/python bench/record_import_fixtures.py --reuse-venvs  # keep venvs of the pinned versions

It needs the package index (pip) but no other network: the items are a local JSONL file.
`make bench` leaves it out: it measures nothing, and it rewrites checked-in test fixtures.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.chat_servers import ChatRequest, ChatServer  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "imports"
LM_EVAL_VERSION = "0.4.13"
INSPECT_VERSION = "0.3.285"
MODELS = ("baseline-model", "candidate-model")
QUESTION = re.compile(r"What is (\d+) plus (\d+)\?")
REPLY_RULE = """\
The local chat server (tests/support/chat_servers.py, OpenAI chat completions wire) answers
"What is A plus B? ..." by the requested model name:

* `baseline-model`: `A+B`, except when A % 10 == 7: `A+B+1` (wrong on 3 of 30 items: 7, 17, 27);
* `candidate-model`: when A % 3 == 0: `A+B-1` (wrong on 10 items: 0, 3, ..., 27); else when
  A % 5 == 4: `The answer is A+B.` (right, but not an exact match: items 4, 14, 19, 29); else `A+B`.

Item i asks A = i, B = (7·i mod 11) + 3 (../arithmetic.jsonl). So the candidate is worse than the
baseline on a known subset: a paired `no_worse_than` rule with confidence must fail on it."""


def reply(request: ChatRequest) -> str:
    """REPLY_RULE: deterministic, and different per model, so the paired test has a regression to find."""
    found = QUESTION.search(request.prompt)
    if found is None:
        return "I do not know."
    a, b = int(found[1]), int(found[2])
    if request.model == "candidate-model":
        if a % 3 == 0:
            return str(a + b - 1)
        return f"The answer is {a + b}." if a % 5 == 4 else str(a + b)
    return str(a + b + 1) if a % 10 == 7 else str(a + b)


def make_venv(path: Path, packages: list[str], distribution: str, version: str, reuse: bool) -> Path:
    """A virtualenv with the pinned tool; reused only when asked and already at that version."""
    python = path / "bin" / "python"
    if reuse and python.exists() and installed_version(python, distribution) == version:
        return python
    shutil.rmtree(path, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
    return python


def installed_version(python: Path, distribution: str) -> str | None:
    code = f"import importlib.metadata as m; print(m.version({distribution!r}))"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def run(command: list[str], cwd: Path, env: dict[str, str]) -> None:
    print("$", " ".join(command), flush=True)
    subprocess.run(command, cwd=cwd, env={**os.environ, **env}, check=True)


def record_lm_eval(python: Path, url: str) -> list[str]:
    folder = FIXTURES / "lm_eval"
    shutil.rmtree(folder / "output", ignore_errors=True)
    commands = []
    for model in MODELS:
        args = [
            "--model", "local-chat-completions",
            "--model_args", f"base_url={url}/v1/chat/completions,model={model},num_concurrent=4",
            "--apply_chat_template", "--include_path", "task", "--tasks", "arithmetic_local",
            "--log_samples", "--output_path", "output",
        ]  # fmt: skip
        run(
            [str(python.parent / "lm_eval"), *args],
            folder,
            {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
        )
        commands.append(" ".join(["lm_eval", *args]).replace(url, "http://127.0.0.1:$PORT"))
    return commands


def record_inspect(python: Path, url: str) -> list[str]:
    """Both models in Inspect's default .eval format; the baseline's first 10 items also as .json
    (the JSON format is about six times larger, so fewer items keep the fixture small)."""
    folder = FIXTURES / "inspect"
    shutil.rmtree(folder / "logs", ignore_errors=True)
    env = {"LOCAL_BASE_URL": f"{url}/v1", "LOCAL_API_KEY": "local"}
    runs = [(model, ["--log-format", "eval"]) for model in MODELS]
    runs.append((MODELS[0], ["--log-format", "json", "--limit", "10"]))
    commands = []
    for model, extra in runs:
        args = [
            "eval", "arithmetic_task.py", "--model", f"openai-api/local/{model}", "--log-dir", "logs",
            "--max-connections", "4", "--display", "none", *extra,
        ]  # fmt: skip
        run([str(python.parent / "inspect"), *args], folder, env)
        commands.append(" ".join(["inspect", *args]))
    return commands


def write_readme(
    folder: Path, title: str, tool: str, install: str, env: str, commands: list[str], note: str = ""
) -> None:
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    lines = [
        f"# {title}",
        "",
        f"Written by {tool} itself on {date}, by `bench/record_import_fixtures.py` (rerun it to regenerate;",
        "do not edit these files by hand). The `benchgate import` tests compare what benchgate reads",
        "with the aggregate results the tool wrote beside the per-item records.",
        "",
        f"* Installed with `{install}` in a fresh virtualenv (Python {sys.version.split()[0]}).",
        "* Server: `ChatServer(reply)` from tests/support/chat_servers.py, on 127.0.0.1:$PORT.",
        f"* Environment: `{env}`.",
        "* Commands, run in this folder:",
        "",
        "```sh",
        *commands,
        "```",
        "",
        *([note, ""] if note else []),
        "## Server reply rule",
        "",
        REPLY_RULE,
        "",
    ]
    (folder / "README.md").write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venvs", type=Path, default=Path("/tmp/benchgate-import-venvs"))
    parser.add_argument(
        "--reuse-venvs", action="store_true", help="keep venvs already at the pinned versions"
    )
    args = parser.parse_args()
    lm_eval = make_venv(
        args.venvs / "lm-eval",
        [f"lm-eval[api]=={LM_EVAL_VERSION}"],
        "lm_eval",
        LM_EVAL_VERSION,
        args.reuse_venvs,
    )
    inspect = make_venv(
        args.venvs / "inspect",
        [f"inspect-ai=={INSPECT_VERSION}", "openai"],
        "inspect_ai",
        INSPECT_VERSION,
        args.reuse_venvs,
    )
    with ChatServer(reply) as server:
        lm_commands = record_lm_eval(lm_eval, server.url)
        inspect_commands = record_inspect(inspect, server.url)
    write_readme(
        FIXTURES / "lm_eval",
        "lm-evaluation-harness logs (`--log_samples`)",
        f"lm-evaluation-harness {LM_EVAL_VERSION}",
        f'pip install "lm-eval[api]=={LM_EVAL_VERSION}"',
        "HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1",
        lm_commands,
        "The task is task/arithmetic_local.yaml over ../arithmetic.jsonl (a local file: no hub access).",
    )
    write_readme(
        FIXTURES / "inspect",
        "Inspect AI eval logs",
        f"Inspect AI {INSPECT_VERSION}",
        f"pip install inspect-ai=={INSPECT_VERSION} openai  # openai {installed_version(inspect, 'openai')}",
        "LOCAL_BASE_URL=http://127.0.0.1:$PORT/v1 LOCAL_API_KEY=local",
        inspect_commands,
        "Both models are logged in Inspect's default `.eval` format (a zip of JSON, zstd-compressed); the\n"
        "baseline's first 10 items also in the `.json` format, about six times larger per item.",
    )
    for path in sorted(FIXTURES.rglob("*")):
        if path.is_file():
            print(f"{path.stat().st_size:>8}  {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
