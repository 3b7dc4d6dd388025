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


def all_shell_lines() -> dict[str, list[str]]:
    steps = github()["jobs"]["gate"]["steps"]
    return {
        "github": [s["run"] for s in steps if "run" in s],
        "gitlab": gitlab()["benchgate"]["script"],
        "jenkins": jenkins_shell(),
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
    gate_step = next(s for s in steps if "benchgate run" in s.get("run", ""))
    assert "continue-on-error" not in gate_step  # the exit code fails the job
    assert not any("GITHUB_STEP_SUMMARY" in s.get("run", "") for s in steps)  # benchgate writes it once


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
    calls = invocations(all_shell_lines()[system])
    assert ["run", "examples/quickstart.yaml", "--out", "out"] in calls
    for words in calls:
        command, args = words[0], words[1:]
        assert command in COMMANDS and command in cli.commands
        options = {opt for param in cli.commands[command].params for opt in param.opts}
        assert {a for a in args if a.startswith("--")} <= options
        assert all((REPO / a).is_file() for a in args if a.endswith((".yaml", ".yml", ".json")))
