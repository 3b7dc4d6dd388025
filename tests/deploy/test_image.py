"""The Dockerfile without a Docker engine (none runs here): its build context and the command it runs.

What `docker build` would fail on or leak is checked statically: every COPY source exists and is not
excluded by .dockerignore, local state (.venv, .git, out, .benchgate) is excluded, and everything the
deployments run from the image is copied. The image's command is then run as is, in the venv, against
the test server.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import os
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.support.prefect_server import PrefectServer
from tests.support.processes import outputs

DOCKERFILE = REPO_ROOT / "Dockerfile"
CODE_DIR = "/opt/benchgate"  # WORKDIR, and the deployments' set_working_directory


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines = [line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = "\n".join(lines).replace("\\\n", " ")
    out = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def ignore_patterns() -> list[str]:
    lines = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip().strip("/") for line in lines if line.strip() and not line.startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: a path is out of the context if it, or a directory above it, matches a pattern."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes for pattern in patterns)


def copied() -> list[str]:
    """Context paths the Dockerfile COPYs (flags such as --chown skipped, the destination dropped)."""
    sources = []
    for keyword, rest in instructions():
        if keyword == "COPY":
            args = [a for a in rest.split() if not a.startswith("--")]
            sources += [a.removeprefix("./") for a in args[:-1]]
    return sources


def test_every_copy_source_exists_and_is_in_the_build_context() -> None:
    patterns = ignore_patterns()
    assert copied()
    for source in copied():
        assert (REPO_ROOT / source).exists(), source
        assert not ignored(source, patterns), f"{source} is excluded by .dockerignore"


def test_local_state_stays_out_of_the_build_context() -> None:
    patterns = ignore_patterns()
    for path in (".venv", ".venv/bin/python", ".git/HEAD", "out/quickstart/report.json", ".benchgate/api"):
        assert ignored(path, patterns), path
    assert ignored("benchgate/__pycache__/settings.cpython-311.pyc", patterns)
    assert not ignored("benchgate/data/squad_v2_sample.json", patterns)


def test_everything_the_deployments_run_is_in_the_image() -> None:
    """pip installs the packages pyproject names; entrypoints and request files are read from CODE_DIR."""
    steps = dict(instructions())
    assert steps["FROM"] == "python:3.11-slim"
    assert steps["WORKDIR"] == CODE_DIR
    roots = {source.split("/")[0] for source in copied()}
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    for package in ("benchgate", "flows", "tasks", "scorers", "deployments"):
        assert f'"{package}*"' in pyproject and package in roots, package
    needed = set()
    for config in ("prefect.yaml", "deployments/containers.yaml"):
        for deployment in yaml.safe_load((REPO_ROOT / config).read_text())["deployments"]:
            needed.add(deployment["entrypoint"].split(":")[0])
            needed.update(v for k, v in (deployment.get("parameters") or {}).items() if k.endswith("_path"))
    for path in needed:
        assert (REPO_ROOT / path).exists() and path.split("/")[0] in roots, path


def test_the_image_runs_as_a_user_with_bubblewrap_and_no_entrypoint() -> None:
    steps = instructions()
    keywords = [k for k, _ in steps]
    assert any(k == "RUN" and "apt-get install" in r and "bubblewrap" in r for k, r in steps)
    user = dict(steps)["USER"]
    assert user not in ("root", "0"), user
    assert keywords.index("USER") > max(i for i, (k, _) in enumerate(steps) if k == "RUN")
    # Docker and Kubernetes workers replace the command with `prefect flow-run execute`: an ENTRYPOINT
    # would be prepended to it.
    assert "ENTRYPOINT" not in keywords


async def _workers(server: PrefectServer, pool: str) -> list[str]:
    from prefect.client.orchestration import PrefectClient

    async with PrefectClient(server.api_url) as client:
        return [worker.name for worker in await client.read_workers_for_work_pool(pool)]


@pytest.mark.slow
def test_the_image_command_starts_a_worker(prefect_server: PrefectServer) -> None:
    """CMD as the image runs it (with the venv's Python), on a pool of its own, for one polling round."""
    command = json.loads(dict(instructions())["CMD"])
    assert command[:3] == ["prefect", "worker", "start"]
    pool = "image-command-test"
    command[command.index("--pool") + 1] = pool
    result = subprocess.run(
        [sys.executable, "-m", *command, "--run-once", "--name", "image-worker"],
        env={**os.environ, **prefect_server.env(), "PREFECT_LOGGING_LEVEL": "INFO"},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, outputs(result)
    assert asyncio.run(_workers(prefect_server, pool)) == ["image-worker"]
