"""The CI snippets in examples/ci parse and call benchgate commands and options that exist."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer.main
import yaml

from benchgate.interfaces.cli import app

CI = Path(__file__).resolve().parents[2] / "examples" / "ci"
REPO = CI.parents[1]
COMMANDS = {"run", "validate", "score", "gate"}  # the commands a CI job calls


def github() -> dict:
    return yaml.safe_load((CI / "github-actions.yml").read_text())


def github_gate_step() -> dict:
    """The step running benchgate: the repository's action (action.yml), published (owner/benchgate@v1)
    or local (./)."""
    steps = github()["jobs"]["gate"]["steps"]
    return next(s for s in steps if re.fullmatch(r"[\w.-]+/benchgate@[\w.-]+|\./?", s.get("uses", "")))


def github_calls() -> list[list[str]]:
    """The action runs `benchgate run REQUEST --out OUT` for its inputs (tests/interfaces/
    test_github_action.py runs its steps); plus any benchgate call in the workflow's own scripts."""
    inputs = github_gate_step()["with"]
    scripts = [s["run"] for s in github()["jobs"]["gate"]["steps"] if "run" in s]
    return [["run", inputs["request"], "--out", inputs["out"]], *invocations(scripts)]


def gitlab() -> dict:
    return yaml.safe_load((CI / "gitlab-ci.yml").read_text())


def jenkins_shell() -> list[str]:
    text = (CI / "Jenkinsfile").read_text()
    return re.findall(r"\bsh\s*\(?\s*(?:script:\s*)?'([^']*)'", text)


def invocations(lines: list[str]) -> list[list[str]]:
    """`benchgate <command> ...` argument lists found in shell lines (any path to the executable)."""
    found = []
    for line in lines:
        for part in re.split(r"&&|;|\n", line):
            words = shlex.split(part, comments=True)
            if words and Path(words[0]).name == "benchgate":
                found.append(words[1:])
    return found


def all_calls() -> dict[str, list[list[str]]]:
    return {
        "github": github_calls(),
        "gitlab": invocations(gitlab()["benchgate"]["script"]),
        "jenkins": invocations(jenkins_shell()),
    }


def test_github_workflow_triggers_cache_artifact_and_failure() -> None:
    workflow = github()
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` key as true
    assert "schedule" in triggers and "pull_request" in triggers
    steps = workflow["jobs"]["gate"]["steps"]
    cache = next(s for s in steps if s.get("uses", "").startswith("actions/cache@"))
    assert cache["with"]["path"] == ".benchgate" and "restore-keys" in cache["with"]
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["with"]["path"] == "out/" and upload["if"] == "always()"
    gate_step = github_gate_step()
    assert "continue-on-error" not in gate_step  # the exit code fails the job
    assert not any("GITHUB_STEP_SUMMARY" in s.get("run", "") for s in steps)  # benchgate writes it once
    assert workflow["permissions"]["pull-requests"] == "write"  # the action's pull-request comment
    checkout = next(s for s in steps if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["persist-credentials"] is False


def test_github_workflow_passes_only_inputs_the_action_declares() -> None:
    declared = yaml.safe_load((REPO / "action.yml").read_text())["inputs"]
    given = github_gate_step()["with"]
    assert set(given) <= set(declared)
    assert (REPO / given["request"]).is_file()


def test_gitlab_job_publishes_junit_and_caches_the_store() -> None:
    job = gitlab()["benchgate"]
    assert job["artifacts"]["reports"]["junit"] == "out/junit.xml" and job["artifacts"]["when"] == "always"
    assert ".benchgate/" in job["cache"]["paths"]
    assert {r["if"] for r in job["rules"]} >= {
        '$CI_PIPELINE_SOURCE == "merge_request_event"',
        '$CI_PIPELINE_SOURCE == "schedule"',
    }


def test_jenkinsfile_has_the_gate_stage_and_junit_step() -> None:
    text = (CI / "Jenkinsfile").read_text()
    assert "stage('Benchmark gate')" in text
    assert "junit testResults: 'out/junit.xml'" in text
    assert "unstable(" in text and "code == 3" in text
    assert text.count("{") == text.count("}")


@pytest.mark.parametrize("system", ["github", "gitlab", "jenkins"])
def test_commands_exist_in_the_cli(system: str) -> None:
    cli = typer.main.get_command(app)
    calls = all_calls()[system]
    assert ["run", "examples/quickstart.yaml", "--out", "out"] in calls
    for words in calls:
        command, args = words[0], words[1:]
        assert command in COMMANDS and command in cli.commands
        options = {opt for param in cli.commands[command].params for opt in param.opts}
        assert {a for a in args if a.startswith("--")} <= options
        assert all((REPO / a).is_file() for a in args if a.endswith((".yaml", ".yml", ".json")))
