"""The API's callers hold a token, not the host: each attack of the "Hardening" issue against a real
`benchgate api`, with the operator's policy file and with the safe defaults (no policy file)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from benchgate.gate.webhooks import verify
from benchgate.interfaces.client import ApiClient
from tests.conftest import REPO_ROOT
from tests.gate.test_webhooks import Receiver
from tests.interfaces.server import TOKEN, ApiServer
from tests.support.chat_servers import ChatServer
from tests.support.prefect_server import PrefectServer

pytestmark = pytest.mark.slow

DATA = REPO_ROOT / "benchgate" / "data"
ENV_SECRET = "do-not-leak-0xC0FFEE"
EVAL_KEY = "eval-key-for-the-allowed-host"
HOOK_SECRET = "whsec_" + "ZGVwbG95LWhvb2stc2VjcmV0LWZvci10ZXN0cw=="  # base64 of a 30-byte key
FILE_CONTENT = "TOPSECRET-ROW-CONTENT"
HOST_REFUSED = "the server's policy does not allow calling this host (policy providers.hosts)"


@dataclass
class Setup:
    guarded: ApiServer  # with the operator's policy file
    default: ApiServer  # without one: the safe defaults
    chat: ChatServer  # the provider host the policy allows
    attacker: ChatServer  # a host the caller controls
    receiver: Receiver  # the deploy hook the policy names as target "deploy"
    evals: Path  # the dataset root the policy allows
    server_file: Path  # a file on the server outside every root


@pytest.fixture(scope="module")
def setup(prefect_server: PrefectServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    home = tmp_path_factory.mktemp("api-policy")
    evals = home / "evals"
    evals.mkdir()
    rows = [{"id": i, "question": f"What is {i} plus {i}?", "answer": str(2 * i)} for i in range(4)]
    (evals / "qa.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    server_file = home / "server-secret.jsonl"
    server_file.write_text(json.dumps({"question": FILE_CONTENT, "answer": FILE_CONTENT}) + "\n")
    (evals / "escape.jsonl").symlink_to(server_file)
    receiver = Receiver()
    receiver.thread.start()
    with ChatServer() as chat, ChatServer() as attacker:
        host = f"127.0.0.1:{chat.port}"
        policy = {
            "datasets": {"roots": ["evals"]},  # relative: beside the policy file
            "providers": {"hosts": [host]},
            "secrets": [{"env": "EVAL_API_KEY", "hosts": [host]}],
            "webhooks": {"deploy": {"url": f"{receiver.url}/deploy", "secret_env": "DEPLOY_HOOK_SECRET"}},
        }
        (home / "policy.yaml").write_text(yaml.safe_dump(policy))
        env = {"SOME_SECRET_VAR": ENV_SECRET, "EVAL_API_KEY": EVAL_KEY, "DEPLOY_HOOK_SECRET": HOOK_SECRET}
        servers: list[ApiServer] = []
        try:
            servers.append(
                ApiServer(
                    prefect_server,
                    home / "store",
                    home / "guarded.log",
                    BENCHGATE_POLICY=str(home / "policy.yaml"),
                    **env,
                )
            )
            servers.append(ApiServer(prefect_server, home / "store-default", home / "default.log", **env))
            guarded, default = servers
            yield Setup(guarded, default, chat, attacker, receiver, evals, server_file)
        finally:
            for server in servers:
                server.stop()
            receiver.server.shutdown()
            receiver.server.server_close()


def builtin_request(**changes: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "name": "policy",
        "models": [{"id": "ref", "provider": "builtin", "model": "reference"}],
        "tasks": [{"task": "question-answering", "path": str(DATA / "squad_v2_sample.json"), "limit": 4}],
    }
    return {**request, **changes}


def custom_task(location: str) -> dict[str, Any]:
    return {
        "task": "sums",
        "dataset": location,
        "id_field": "id",
        "prompt": "{{ question }}",
        "target": "answer",
        "metrics": ["exact-match"],
    }


def refused(server: ApiServer, request: dict[str, Any]) -> list[str]:
    with server.client() as client:
        response = client.post("/v1/benchmarks", json=request)
    assert response.status_code == 422, response.text
    return response.json()["problems"]


def both(setup: Setup) -> list[ApiServer]:
    return [setup.guarded, setup.default]


def test_server_files_are_not_read(setup: Setup) -> None:
    outside = "outside the dataset directories the server's policy allows (policy datasets.roots)"
    attempts = {
        str(setup.server_file): f"tasks[0].dataset: {outside}",
        str(setup.evals / "escape.jsonl"): f"tasks[0].dataset: {outside}",  # a symlink out of the root
        f"{setup.evals}/../{setup.server_file.name}": (
            "tasks[0].dataset: '..' is not allowed in a dataset path (policy datasets.roots)"
        ),
        "/etc/passwd.csv": f"tasks[0].dataset: {outside}",
        "http://169.254.169.254/latest/user-data.json": (
            "tasks[0].dataset: outside the dataset URLs the server's policy allows (policy datasets.urls)"
        ),
    }
    for server in both(setup):
        for location, problem in attempts.items():
            with server.client() as client:
                response = client.post("/v1/benchmarks", json=builtin_request(tasks=[custom_task(location)]))
            assert response.status_code == 422 and response.json()["problems"] == [problem], location
            for leak in (FILE_CONTENT, setup.server_file.name, "passwd", "169.254"):
                assert leak not in response.text
        problems = refused(
            server, builtin_request(tasks=[{"task": "question-answering", "path": "/etc/hosts"}])
        )
        assert problems == [f"tasks[0].path: {outside}"]


def test_an_env_secret_is_not_sent_to_a_caller_chosen_host(setup: Setup) -> None:
    for server in both(setup):
        for key in ("SOME_SECRET_VAR", "EVAL_API_KEY"):  # an arbitrary variable; a granted one, elsewhere
            model = {
                "id": "x",
                "provider": "openai-compatible",
                "base_url": setup.attacker.url + "/v1",
                "api_key_env": key,
            }
            problems = refused(server, builtin_request(models=[model]))
            assert problems[0] == f"models[0].base_url: {HOST_REFUSED}"
            assert problems[1].startswith("models[0].api_key_env: ")
            assert ENV_SECRET not in json.dumps(problems) and EVAL_KEY not in json.dumps(problems)
    # The granted key towards the allowed host, but from a secret the policy does not name for it:
    model = {"id": "x", "provider": "openai-compatible", "base_url": setup.chat.url + "/v1"}
    problems = refused(setup.guarded, builtin_request(models=[{**model, "api_key_env": "SOME_SECRET_VAR"}]))
    assert problems == [
        "models[0].api_key_env: not a secret the server's policy lets requests use (policy secrets)"
    ]
    assert setup.attacker.requests == []


def test_webhook_urls_and_secrets_are_refused(setup: Setup) -> None:
    rule = {"model": "ref", "task": "question-answering", "metric": "f1-score", "at_least": 0}
    hook = {"url": f"{setup.attacker.url}/steal", "secret_env": "DEPLOY_HOOK_SECRET"}
    for server in both(setup):
        problems = refused(server, builtin_request(gate={"rules": [rule], "on_pass": [hook]}))
        assert len(problems) == 1 and problems[0].startswith(
            "gate.on_pass[0].url: webhook URLs and secrets are set by the server; name one of its targets"
        )
    problems = refused(
        setup.default, builtin_request(gate={"rules": [rule], "on_pass": [{"target": "deploy"}]})
    )
    assert problems == [
        "gate.on_pass[0].target: not a webhook target of the server (none configured (BENCHGATE_POLICY))"
    ]
    with_secret = {"target": "deploy", "secret_env": "SOME_SECRET_VAR"}
    problems = refused(setup.guarded, builtin_request(gate={"rules": [rule], "on_pass": [with_secret]}))
    assert problems == [
        "gate.on_pass[0]: secret_env: not with target (the server's configuration of the target holds its "
        "URL and secret)"
    ]


@pytest.mark.parametrize(
    "model,field",
    [
        ({"provider": "openai-compatible", "base_url": "http://169.254.169.254/latest"}, "base_url"),
        ({"provider": "openai-compatible", "base_url": "http://127.0.0.1:22/v1"}, "base_url"),
        ({"provider": "openai-compatible", "base_url": "http://localhost@127.0.0.1:22/v1"}, "base_url"),
        ({"provider": "openai"}, "provider"),  # its default host, not allowed here
    ],
)
def test_provider_hosts_outside_the_policy_are_refused(
    setup: Setup, model: dict[str, Any], field: str
) -> None:
    for server in both(setup):
        problems = refused(server, builtin_request(models=[{"id": "x", **model}]))
        if "@" in model.get("base_url", ""):  # the request's own URL rule may refuse it first
            assert len(problems) == 1 and problems[0].startswith(f"models[0].{field}: "), problems
        else:
            assert problems == [f"models[0].{field}: {HOST_REFUSED}"]


def test_the_allowed_configuration_runs_and_its_target_gets_a_verified_call(setup: Setup) -> None:
    model = {
        "id": "local",
        "provider": "openai-compatible",
        "base_url": setup.chat.url + "/v1",
        "api_key_env": "EVAL_API_KEY",
    }
    rule = {"model": "local", "task": "sums", "metric": "exact-match", "at_least": 0}
    request = builtin_request(
        models=[model],
        tasks=[custom_task(str(setup.evals / "qa.jsonl"))],
        gate={"rules": [rule], "on_pass": [{"target": "deploy"}]},
    )
    client = ApiClient(setup.guarded.url, TOKEN)
    try:
        report = client.wait(client.submit(request), timeout=300, poll=0.5)
    finally:
        client.close()
    assert report["status"] == "completed" and report["gate"]["decision"] == "pass", report
    [delivery] = report["gate"]["deliveries"]
    assert delivery["ok"] and delivery["url"] == "target:deploy"
    assert setup.receiver.url not in json.dumps(report)  # the target's URL stays on the server
    [(path, headers, body)] = setup.receiver.requests
    assert path == "/deploy" and verify(HOOK_SECRET, headers, body)
    assert json.loads(body)["benchmarkId"] == report["benchmarkId"]
    assert {r.headers.get("authorization") for r in setup.chat.requests} == {f"Bearer {EVAL_KEY}"}


def test_the_defaults_still_run_builtin_models_on_bundled_data(setup: Setup) -> None:
    client = ApiClient(setup.default.url, TOKEN)
    try:
        report = client.wait(client.submit(builtin_request()), timeout=300, poll=0.5)
    finally:
        client.close()
    assert report["status"] == "completed"
