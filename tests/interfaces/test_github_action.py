"""The GitHub Action (action.yml) and its scripts (benchgate.interfaces.github), run for real.

The scripts run as subprocesses against a fake GitHub REST API (a real HTTP server on 127.0.0.1 that
keeps comments in memory, pages them with Link headers and records every call), on gate.json and
report.md files written by a real `benchgate run` with a failing, a warned and a passing rule. The
action's own steps run in order through a small stand-in for the runner: `${{ }}` expressions
resolved from the inputs and earlier steps' outputs, each script under bash as Actions runs it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from benchgate.interfaces.github import COMMENT_LIMIT, comment_body
from tests.conftest import REPO_ROOT, cli_env, run_cli
from tests.support.prefect_server import PrefectServer

ACTION = REPO_ROOT / "action.yml"
TOKEN = "ghs_test-token-never-printed"
REPOSITORY = "acme/models"
PR = 7
PAGE = 3  # the fake pages comments 3 at a time, so the PR's few existing comments span pages
ODD_NAME = "baseline f1 ≥ 99.9%, strictly:\nno excuses"  # %, a newline, ':' and ',' to escape
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


@dataclass
class Call:
    method: str
    path: str
    body: Any
    auth: str | None


@dataclass
class FakeGitHub:
    """Issue comments in memory; `forbid` answers every call with 403 (a fork's read-only token)."""

    url: str = ""
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    forbid: bool = False
    next_id: int = 1000

    def add(self, number: int, body: str, user: str) -> dict[str, Any]:
        self.next_id += 1
        comment = {"id": self.next_id, "body": body, "user": {"login": user}}
        comment["html_url"] = f"https://github.test/{REPOSITORY}/pull/{number}#issuecomment-{self.next_id}"
        self.comments.setdefault(number, []).append(comment)
        return comment

    def ours(self, number: int) -> list[dict[str, Any]]:
        return [c for c in self.comments.get(number, []) if c["body"].startswith("<!-- benchgate:")]


def serve(fake: FakeGitHub) -> ThreadingHTTPServer:
    list_path = re.compile(rf"/repos/{REPOSITORY}/issues/(\d+)/comments")
    edit_path = re.compile(rf"/repos/{REPOSITORY}/issues/comments/(\d+)")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep the test output quiet
            pass

        def reply(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
            payload = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def handle_call(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            auth = self.headers.get("Authorization")
            fake.calls.append(Call(self.command, self.path, body, auth))
            url = urlsplit(self.path)
            if auth != f"Bearer {TOKEN}":
                return self.reply(401, {"message": "Bad credentials"})
            if fake.forbid:
                return self.reply(403, {"message": "Resource not accessible by integration"})
            listed, edited = list_path.fullmatch(url.path), edit_path.fullmatch(url.path)
            if listed and self.command == "GET":
                comments = fake.comments.get(int(listed[1]), [])
                page = int(parse_qs(url.query).get("page", ["1"])[0])
                headers = {}
                if page * PAGE < len(comments):
                    headers["Link"] = f'<{fake.url}{url.path}?per_page={PAGE}&page={page + 1}>; rel="next"'
                return self.reply(200, comments[(page - 1) * PAGE : page * PAGE], headers)
            if listed and self.command == "POST":
                return self.reply(201, fake.add(int(listed[1]), body["body"], "github-actions[bot]"))
            if edited and self.command == "PATCH":
                found = [c for cs in fake.comments.values() for c in cs if c["id"] == int(edited[1])]
                if found:
                    found[0]["body"] = body["body"]
                    return self.reply(200, found[0])
            return self.reply(404, {"message": "Not Found"})

        do_GET = do_POST = do_PATCH = handle_call

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub()
    for i in range(5):  # other bots and people already talked on the PR, over two pages
        fake.add(PR, f"coverage report {i}: mentions benchgate but is not ours", f"bot-{i}[bot]")
    fake.add(PR + 1, "<!-- benchgate:gate -->\nanother PR's comment", "github-actions[bot]")
    server = serve(fake)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


def actions_env(
    tmp: Path, fake: FakeGitHub | None = None, event: dict[str, Any] | None = None
) -> dict[str, str]:
    """The variables a step sees in Actions; the test process's own GITHUB_* (if any) are dropped."""
    event_path = tmp / "event.json"
    event_path.write_text(json.dumps(event if event is not None else {"pull_request": {"number": PR}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
        GITHUB_REPOSITORY=REPOSITORY,
        GITHUB_TOKEN=TOKEN,
        GITHUB_EVENT_PATH=str(event_path),
        GITHUB_EVENT_NAME="pull_request" if event is None else "push",
        GITHUB_SERVER_URL="https://github.test",
        GITHUB_RUN_ID="42",
        GITHUB_STEP_SUMMARY=str(tmp / "summary.md"),
    )
    if fake is not None:
        env["GITHUB_API_URL"] = fake.url
    return env


def script(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchgate.interfaces.github", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )


def read_outputs(path: Path) -> dict[str, str]:
    """$GITHUB_OUTPUT as the runner reads it: `name=value` lines and `name<<DELIMITER` blocks."""
    values, lines = {}, iter(path.read_text().splitlines()) if path.exists() else iter(())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            block = []
            for item in lines:
                if item == delimiter:
                    break
                block.append(item)
            values[name] = "\n".join(block)
        elif line:
            name, value = line.split("=", 1)
            values[name] = value
    return values


def unescape(text: str) -> str:
    for escaped, raw in (("%0A", "\n"), ("%0D", "\r"), ("%3A", ":"), ("%2C", ","), ("%25", "%")):
        text = text.replace(escaped, raw)
    return text


# --- the comment ---------------------------------------------------------------------------------------


def test_the_comment_is_created_once_then_updated_never_duplicated(github: FakeGitHub, tmp_path) -> None:
    report = tmp_path / "report.md"
    env = actions_env(tmp_path, github)
    report.write_text("# Quickstart\n\n## Gate: ❌ fail\n")
    first = script(["comment", "--body", str(report), "--key", "gate"], env)
    assert first.returncode == 0, first.stderr
    assert [(c.method, urlsplit(c.path).query) for c in github.calls] == [
        ("GET", "per_page=100"),
        ("GET", f"per_page={PAGE}&page=2"),
        ("POST", ""),
    ]
    assert all(c.auth == f"Bearer {TOKEN}" for c in github.calls)
    (created,) = github.ours(PR)
    assert created["body"].startswith("<!-- benchgate:gate -->\n# Quickstart\n")
    assert "[benchgate run](https://github.test/acme/models/actions/runs/42)" in created["body"]
    assert "created comment" in first.stdout and created["html_url"] in first.stdout

    github.calls.clear()
    report.write_text("# Quickstart\n\n## Gate: ✅ pass\n")
    second = script(["comment", "--body", str(report), "--key", "gate"], env)
    assert second.returncode == 0, second.stderr
    assert [c.method for c in github.calls] == ["GET", "GET", "PATCH"]  # ours is the 6th: on page 2
    assert github.calls[-1].path == f"/repos/{REPOSITORY}/issues/comments/{created['id']}"
    (updated,) = github.ours(PR)
    assert updated["id"] == created["id"] and "✅ pass" in updated["body"] and "❌" not in updated["body"]
    assert len(github.comments[PR]) == 6  # the other bots' comments untouched, and only one of ours
    assert github.comments[PR + 1][0]["body"].endswith("another PR's comment")
    assert TOKEN not in first.stdout + first.stderr + second.stdout + second.stderr


def test_another_key_keeps_its_own_comment(github: FakeGitHub, tmp_path) -> None:
    report = tmp_path / "report.md"
    report.write_text("# Nightly\n")
    env = actions_env(tmp_path, github)
    for key in ("gate", "safety-evals", "gate", "safety-evals"):
        assert script(["comment", "--body", str(report), "--key", key], env).returncode == 0
    assert sorted(c["body"].split("\n", 1)[0] for c in github.ours(PR)) == [
        "<!-- benchgate:gate -->",
        "<!-- benchgate:safety-evals -->",
    ]
    assert [c.method for c in github.calls if c.method != "GET"] == ["POST", "POST", "PATCH", "PATCH"]


def test_outside_a_pull_request_nothing_is_posted(github: FakeGitHub, tmp_path) -> None:
    report = tmp_path / "report.md"
    report.write_text("# Nightly\n")
    done = script(["comment", "--body", str(report)], actions_env(tmp_path, github, event={"ref": "main"}))
    assert done.returncode == 0
    assert done.stdout.startswith("::notice::") and "not a pull request (event push)" in done.stdout
    assert github.calls == []


def test_a_refused_comment_warns_without_the_token(github: FakeGitHub, tmp_path) -> None:
    github.forbid = True
    done = script(["comment", "--body", str(tmp_path / "missing.md")], actions_env(tmp_path, github))
    assert done.returncode == 4 and done.stdout.startswith("::warning::")
    assert "403" in done.stdout and "%0A" in done.stdout.strip()  # one line: the newline is escaped
    assert TOKEN not in done.stdout + done.stderr


def test_a_key_that_could_end_the_marker_is_refused(github: FakeGitHub, tmp_path) -> None:
    report = tmp_path / "report.md"
    report.write_text("x")
    done = script(["comment", "--body", str(report), "--key", "a-->b"], actions_env(tmp_path, github))
    assert done.returncode == 2 and github.calls == []


def test_a_long_report_is_trimmed_at_a_line_to_the_comment_limit() -> None:
    markdown = "".join(f"| row {i} | {'x' * 90} |\n" for i in range(2000))
    body = comment_body(markdown, "gate", "https://github.test/run")
    assert len(body) <= COMMENT_LIMIT
    assert body.startswith("<!-- benchgate:gate -->\n| row 0 |")
    assert body.endswith("(https://github.test/run)\n")
    kept = body.split("\n\n… _report truncated")[0]
    assert kept.endswith(" |") and "report truncated to GitHub's comment limit" in body


# --- a real gate: annotations and outputs ----------------------------------------------------------------


@dataclass
class GateRun:
    out: Path
    request: Path
    rules: Path
    env: dict[str, str]
    exit_code: int


@pytest.fixture(scope="module")
def gate_run(prefect_server: PrefectServer, tmp_path_factory: pytest.TempPathFactory) -> GateRun:
    """`benchgate run` on SQuAD's sample: the baseline fails a threshold (under ODD_NAME); reference
    vs baseline with a tiny margin has too little data to rule out a drop (warn); one rule passes."""
    tmp = tmp_path_factory.mktemp("gate-run")
    gate = {
        "baseline": "baseline",
        "rules": [
            {"model": "baseline", "task": "question-answering", "metric": "f1-score", "at_least": 99.9,
             "name": ODD_NAME},
            {"model": "reference", "task": "question-answering", "metric": "exact-match",
             "no_worse_than": "baseline", "margin": 0.001, "confidence": 0.95},
            {"model": "reference", "task": "question-answering", "metric": "f1-score", "at_least": 99.9},
        ],
    }  # fmt: skip
    request = {
        "name": "Action test",
        "models": [
            {"id": "reference", "provider": "builtin", "model": "reference"},
            {"id": "baseline", "provider": "builtin", "model": "baseline"},
        ],
        "tasks": [
            {
                "task": "question-answering",
                "dataset": "squad-v2",
                "path": str(REPO_ROOT / "benchgate/data/squad_v2_sample.json"),
            }
        ],
        "gate": gate,
    }
    (tmp / "request.yaml").write_text(yaml.safe_dump(request, allow_unicode=True))
    (tmp / "rules.yaml").write_text(yaml.safe_dump(gate, allow_unicode=True))
    env = {**actions_env(tmp), **cli_env(prefect_server, tmp / "store")}
    done = run_cli(["run", str(tmp / "request.yaml"), "--out", str(tmp / "out")], env)
    assert done.returncode == 1, done.stdout + done.stderr
    return GateRun(tmp / "out", tmp / "request.yaml", tmp / "rules.yaml", env, done.returncode)


def test_annotations_one_per_failed_or_warned_rule_escaped(gate_run: GateRun, tmp_path) -> None:
    gate = json.loads((gate_run.out / "gate.json").read_text())
    verdicts = {rule["rule"]: rule["verdict"] for rule in gate["rules"]}
    assert sorted(verdicts.values()) == ["fail", "pass", "warn"] and verdicts[ODD_NAME] == "fail"

    done = script(["annotate", str(gate_run.out / "gate.json")], actions_env(tmp_path))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == ["::error", "::warning"]
    parsed = [re.fullmatch(r"::(error|warning) title=([^:]*)::(.*)", line) for line in lines]
    assert all(parsed)
    error, warning = parsed
    assert "%25" in error[2] and "%0A" in error[2] and "%3A" in error[2] and "%2C" in error[2]
    assert unescape(error[2]) == f"benchgate fail: {ODD_NAME}"
    assert unescape(error[3]).startswith(f"{ODD_NAME} (baseline on question-answering): f1-score = ")
    assert "," not in error[2] and ":" not in error[2] and "\n" not in error[3]
    warned = next(name for name, verdict in verdicts.items() if verdict == "warn")
    assert unescape(warning[2]) == f"benchgate warn: {warned}"


def test_outputs_decision_exit_code_and_report(gate_run: GateRun, tmp_path) -> None:
    env = {**actions_env(tmp_path), "GITHUB_OUTPUT": str(tmp_path / "output")}
    done = script(["outputs", "--out", str(gate_run.out), "--exit-code", str(gate_run.exit_code)], env)
    assert done.returncode == 0, done.stderr
    assert read_outputs(tmp_path / "output") == {
        "decision": "fail",
        "exit-code": "1",
        "report": str(gate_run.out / "report.json"),
    }
    nothing = ["outputs", "--out", str(tmp_path / "none"), "--exit-code", "2", "--report", "given.json"]
    assert script(nothing, env).returncode == 0
    assert read_outputs(tmp_path / "output")["decision"] == "invalid"  # the later value wins
    assert read_outputs(tmp_path / "output")["report"] == "given.json"


# --- action.yml ---------------------------------------------------------------------------------------


def action() -> dict[str, Any]:
    return yaml.safe_load(ACTION.read_text())


def test_action_declares_what_it_uses_and_runs_scripts_safely() -> None:
    spec = action()
    assert spec["runs"]["using"] == "composite"
    used = set(re.findall(r"\binputs\.([\w-]+)", " ".join(EXPRESSION.findall(ACTION.read_text()))))
    assert used and used <= set(spec["inputs"])
    assert {"decision", "exit-code", "report"} <= set(spec["outputs"])
    for step in spec["runs"]["steps"]:
        if "run" in step:
            assert step.get("shell") == "bash", step.get("name")
            assert "${{" not in step["run"], f"{step['name']}: inputs reach scripts through env only"
            assert "GITHUB_TOKEN" not in step.get("env", {}) or "comment" in step["run"]
    assert spec["inputs"]["github-token"]["default"] == "${{ github.token }}"
    assert "pull_request_target" in spec["inputs"]["comment"]["description"]


def python_module_calls(text: str) -> list[list[str]]:
    """`python -m <benchgate module> <command>` found in a script, with the options it passes."""
    calls = []
    for line in text.splitlines():
        for part in re.split(r"\|\||&&|;|\|", line):
            words = shlex.split(part, comments=True)
            if words[:2] == ["python", "-m"] and words[2].startswith("benchgate"):
                calls.append(words[2:])
    return calls


def test_action_scripts_call_benchgate_commands_that_exist() -> None:
    calls = [call for s in action()["runs"]["steps"] for call in python_module_calls(s.get("run", ""))]
    assert {(c[0], c[1]) for c in calls if len(c) > 1 and not c[1].startswith("-")} >= {
        ("benchgate", "run"),
        ("benchgate", "gate"),
        ("benchgate.interfaces.github", "annotate"),
        ("benchgate.interfaces.github", "outputs"),
        ("benchgate.interfaces.github", "comment"),
    }
    for call in calls:
        module, command = call[0], [w for w in call[1:2] if not w.startswith("-")]
        helped = subprocess.run(
            [sys.executable, "-m", module, *command, "--help"], capture_output=True, text=True, timeout=120
        )
        assert helped.returncode == 0, helped.stderr
        options = {a for a in call if a.startswith("--") and a != "--help"}
        assert all(option in helped.stdout for option in options), (call, helped.stdout)


# --- the whole action, step by step --------------------------------------------------------------------


class Runner:
    """Runs a composite action's script steps as Actions does, for the expressions action.yml uses."""

    def __init__(self, inputs: dict[str, str], env: dict[str, str], tmp: Path) -> None:
        spec = action()
        self.inputs = {name: str(i.get("default", "")) for name, i in spec["inputs"].items()} | inputs
        self.github = {"token": env["GITHUB_TOKEN"], "job": "gate"}
        self.steps: dict[str, dict[str, str]] = {}
        self.env, self.tmp, self.spec = env, tmp, spec

    def value(self, reference: str) -> str:
        parts = reference.split(".")
        if parts[0] == "inputs":
            return self.expand(self.inputs[parts[1]])
        if parts[0] == "github":
            return self.github[parts[1]]
        assert parts[0] == "steps" and parts[2] == "outputs", reference
        return self.steps.get(parts[1], {}).get(parts[3], "")

    def expand(self, text: str) -> str:
        return EXPRESSION.sub(lambda m: self.value(m[1]), str(text))

    def condition(self, text: str) -> bool:
        """`a && b`, each `!cancelled()`, `ref != ''` or `ref == 'literal'` (all that action.yml uses)."""
        inner = EXPRESSION.fullmatch(text.strip())
        terms = (inner[1] if inner else text).split("&&")
        for term in (t.strip() for t in terms):
            if term == "!cancelled()":
                continue
            compared = re.fullmatch(r"([\w.-]+) (==|!=) '(.*)'", term)
            assert compared, f"unsupported condition {term!r}"
            equal = self.value(compared[1]) == compared[3]
            if equal != (compared[2] == "=="):
                return False
        return True

    def run(self) -> tuple[int, str]:
        """The first failing step's exit code (0 if none) and every step's output."""
        log = ""
        for i, step in enumerate(self.spec["runs"]["steps"]):
            if "uses" in step or ("if" in step and not self.condition(step["if"])):
                continue
            output = self.tmp / f"output-{i}"
            env = {**self.env, **{k: self.expand(v) for k, v in step.get("env", {}).items()}}
            env.update(GITHUB_OUTPUT=str(output), GITHUB_ACTION_PATH=str(REPO_ROOT))
            done = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                env=env,
                cwd=self.tmp,
                capture_output=True,
                text=True,
                timeout=300,
            )
            log += done.stdout + done.stderr
            if "id" in step:
                self.steps[step["id"]] = read_outputs(output)
            if done.returncode and not step.get("continue-on-error"):
                return done.returncode, log
        return 0, log


def test_the_action_gates_a_report_annotates_comments_and_fails_the_job(
    gate_run: GateRun, github: FakeGitHub, tmp_path
) -> None:
    env = {**gate_run.env, **actions_env(tmp_path, github)}
    inputs = {
        "report": str(gate_run.out / "report.json"),
        "rules": str(gate_run.rules),
        "install": "none",
        "python-version": "",
    }
    code, log = Runner(inputs, env, tmp_path).run()
    assert code == 1, log
    assert sum(line.startswith("::error title=") for line in log.splitlines()) == 1
    assert "::warning title=benchgate warn" in log and "benchgate exited 1 (1 gate failed" in log
    assert TOKEN not in log
    out = tmp_path / "benchgate-out"
    assert {p.name for p in out.iterdir()} >= {"gate.json", "junit.xml", "report.md"}
    (posted,) = github.ours(PR)
    assert posted["body"].startswith("<!-- benchgate:gate -->\n") and "## Gate: ❌ fail" in posted["body"]
    assert (tmp_path / "summary.md").read_text().count("## Gate") == 1  # benchgate wrote it, once

    outputs = [read_outputs(p) for p in sorted(tmp_path.glob("output-*"))]
    assert {"decision": "fail", "exit-code": "1", "report": inputs["report"]} in outputs


def test_the_action_refuses_neither_request_nor_report(github: FakeGitHub, tmp_path) -> None:
    code, log = Runner({"install": "none", "comment": "false"}, actions_env(tmp_path, github), tmp_path).run()
    assert code == 2 and "::error title=benchgate action::give either request, or report and rules" in log
    assert github.calls == []
