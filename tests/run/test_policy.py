"""The operator's policy: its file format, and each rule on requests (paths, URLs, hosts, secrets, hooks)."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest

from benchgate.errors import ConfigurationError, RequestError
from benchgate.run.policy import (
    BUNDLED_DATA,
    Endpoint,
    Policy,
    load_policy,
    policy_in_force,
    request_check,
)
from benchgate.run.validation import parse_request
from benchgate.spec.request import BenchmarkRequest

EXAMPLE = """\
datasets:
  roots: [data, /srv/evals]
  urls: ["s3://evals/datasets/"]
  hub: [my-org/eval-set]
providers:
  hosts: [api.openai.com, "127.0.0.1:8000", "https://gateway.internal/v1/"]
secrets:
  - {env: OPENAI_API_KEY, hosts: [api.openai.com]}
  - {block: gateway-key, hosts: ["https://gateway.internal/v1/"]}
webhooks:
  deploy-prod: {url: "https://deploy.internal/hooks/benchgate", secret_env: DEPLOY_HOOK_SECRET}
"""
OUTSIDE = "outside the dataset directories the server's policy allows (policy datasets.roots)"
BASE: dict[str, Any] = {
    "name": "policy",
    "models": [{"id": "ref", "provider": "builtin", "model": "reference"}],
    "tasks": [{"task": "question-answering", "path": str(BUNDLED_DATA / "squad_v2_sample.json")}],
}


def request(**changes: Any) -> BenchmarkRequest:
    data = copy.deepcopy(BASE)
    for key, value in changes.items():
        data[key] = value
    return BenchmarkRequest.model_validate(data)


def custom_task(location: str, **more: Any) -> dict[str, Any]:
    return {
        "task": "mine",
        "dataset": location,
        "prompt": "{{ q }}",
        "target": "{{ a }}",
        "metrics": ["exact-match"],
        **more,
    }


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    path = tmp_path / "policy.yaml"
    path.write_text(EXAMPLE)
    return load_policy(path)


def test_the_documented_example_loads_with_relative_roots_beside_the_file(
    policy: Policy, tmp_path: Path
) -> None:
    assert policy.datasets.roots == [str(tmp_path / "data"), "/srv/evals"]
    assert policy.webhooks["deploy-prod"].secret_env == "DEPLOY_HOOK_SECRET"


def test_an_empty_file_is_the_safe_default(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_policy(path) == Policy()


@pytest.mark.parametrize(
    "text,problem",
    [
        ("datasets: {rots: [x]}\n", "datasets.rots: unknown key (not part of the policy format)"),
        ("secrets: [{hosts: [a.example]}]\n", "secrets[0]: give env or block, exactly one"),
        ("secrets: [{env: K}]\n", "secrets[0].hosts: Field required"),
        (
            "secrets: [{env: K, hosts: ['u@a.example']}]\n",
            "expected host, host:port or an http(s) URL prefix",
        ),
        ("providers: {hosts: ['a.example/path']}\n", "providers.hosts: "),
        ("datasets: {urls: ['file:///srv/']}\n", "local directories go in roots"),
        (
            "webhooks: {deploy: {url: 'https://d.example/'}}\n",
            "webhooks.deploy: give secret_env or secret_block",
        ),
        ("- a list\n", "(top level): Input should be"),
    ],
)
def test_an_invalid_file_names_the_field(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=r"policy file .* is invalid") as error:
        load_policy(path)
    assert problem in str(error.value)


def test_no_policy_file_means_defaults_only_for_untrusted_requests(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("BENCHGATE_POLICY", raising=False)
    assert policy_in_force(untrusted=True) == Policy() and policy_in_force(untrusted=False) is None
    path = tmp_path / "policy.yaml"
    path.write_text(EXAMPLE)
    monkeypatch.setenv("BENCHGATE_POLICY", str(path))
    assert policy_in_force(untrusted=False) == load_policy(path)


@pytest.mark.parametrize(
    "entry,url,allowed",
    [
        ("api.openai.com", "https://api.openai.com/v1", True),
        ("api.openai.com", "https://API.openai.com./v1", True),
        ("api.openai.com", "https://api.openai.com:8443/v1", False),  # a bare host: the default port only
        ("api.openai.com", "https://api.openai.com@169.254.169.254/", False),
        ("api.openai.com", "https://169.254.169.254\\@api.openai.com/", False),
        ("127.0.0.1:8000", "http://127.0.0.1:8000/v1", True),
        ("127.0.0.1:8000", "http://127.0.0.1:8001/v1", False),
        ("127.0.0.1:8000", "http://127.0.0.1/v1", False),
        ("https://gateway.internal/v1/", "https://gateway.internal/v1", True),
        ("https://gateway.internal/v1/", "https://gateway.internal/v1/chat", True),
        ("https://gateway.internal/v1/", "https://gateway.internal/v10", False),
        ("https://gateway.internal/v1/", "https://gateway.internal/v1/../admin", False),
        ("https://gateway.internal/v1/", "https://gateway.internal/v1/%2e%2e/admin", False),
        ("https://gateway.internal/v1/", "http://gateway.internal/v1", False),
    ],
)
def test_host_patterns(entry: str, url: str, allowed: bool) -> None:
    assert Endpoint.parse(entry).matches(url) is allowed


def test_bundled_data_and_the_store_are_readable_by_default(tmp_path: Path) -> None:
    store = tmp_path / "store"
    (store / "data").mkdir(parents=True)
    inside = store / "data" / "rows.jsonl"
    assert Policy().problems(request(), str(store)) == []
    assert Policy().problems(request(tasks=[custom_task(str(inside))]), str(store)) == []


def test_a_server_file_outside_the_roots_is_refused_without_echoing_it(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret-notes.jsonl"
    secret_file.write_text('{"q": "the content", "a": "x"}\n')
    problems = Policy().problems(
        request(tasks=[custom_task(str(secret_file)), {"task": "question-answering", "path": "/etc/passwd"}]),
        str(tmp_path / "store"),
    )
    assert problems == [f"tasks[0].dataset: {OUTSIDE}", f"tasks[1].path: {OUTSIDE}"]


def test_dot_dot_is_refused_even_when_it_lands_inside(tmp_path: Path) -> None:
    sneaky = f"{BUNDLED_DATA}/../data/squad_v2_sample.json"
    [problem] = Policy().problems(
        request(tasks=[{"task": "question-answering", "path": sneaky}]), str(tmp_path)
    )
    assert problem == "tasks[0].path: '..' is not allowed in a dataset path (policy datasets.roots)"


def test_a_symlink_out_of_a_root_is_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "rows.jsonl").write_text("{}\n")
    (root / "link.jsonl").symlink_to(outside / "rows.jsonl")
    (root / "dir").symlink_to(outside)
    policy = Policy.model_validate({"datasets": {"roots": [str(root)]}})
    for path in (root / "link.jsonl", root / "dir" / "rows.jsonl"):
        [problem] = policy.problems(request(tasks=[custom_task(str(path))]), str(tmp_path / "store"))
        assert "outside the dataset directories" in problem
    (root / "real.jsonl").write_text("{}\n")
    assert (
        policy.problems(request(tasks=[custom_task(str(root / "real.jsonl"))]), str(tmp_path / "store")) == []
    )


def test_relative_paths_are_resolved_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    (store / "rows.jsonl").write_text("{}\n")
    monkeypatch.chdir(store)
    assert Policy().problems(request(tasks=[custom_task("rows.jsonl")]), str(store)) == []
    monkeypatch.chdir(tmp_path)
    assert Policy().problems(request(tasks=[custom_task("store/rows.jsonl")]), "store") == []
    [problem] = Policy().problems(request(tasks=[custom_task("rows.jsonl")]), "store")
    assert problem.startswith("tasks[0].dataset: outside")


def test_few_shot_files_are_checked_like_datasets(tmp_path: Path) -> None:
    task = custom_task(str(BUNDLED_DATA / "x.jsonl"), examples={"path": "/etc/hosts", "n": 2})
    [problem] = Policy().problems(request(tasks=[task]), str(tmp_path))
    assert problem.startswith("tasks[0].examples.path: outside")


def test_a_builtin_tasks_dataset_is_a_name_not_a_location(tmp_path: Path) -> None:
    task = {"task": "question-answering", "dataset": "squad-v2"}
    assert Policy().problems(request(tasks=[task]), str(tmp_path)) == []


def test_urls_and_hub_repos_only_as_listed(policy: Policy, tmp_path: Path) -> None:
    def problems(location: str, store: str = str(tmp_path)) -> list[str]:
        return policy.problems(request(tasks=[custom_task(location, split="test")]), store)

    assert problems("s3://evals/datasets/qa.jsonl") == []
    assert problems("s3://evals/datasets-other/qa.jsonl") != []
    assert problems("s3://evals/datasets/../secrets/k.jsonl") != []
    assert problems("http://169.254.169.254/latest/meta-data.json") != []
    assert problems("simplecache::s3://evals/datasets/qa.jsonl") == [
        "tasks[0].dataset: chained fsspec URLs are not allowed by the server's policy"
    ]
    assert problems("s3://store-bucket/bench/x.jsonl", store="s3://store-bucket/bench") == []
    assert problems("hf:my-org/eval-set@v2") == []
    assert problems("hf:someone/else") == [
        "tasks[0].dataset: hub dataset not allowed by the server's policy (policy datasets.hub)"
    ]


def model(**fields: Any) -> dict[str, Any]:
    return {"id": "m", **fields}


def test_providers_and_secrets_by_default(tmp_path: Path) -> None:
    def problems(**fields: Any) -> list[str]:
        return Policy().problems(request(models=[model(**fields)]), str(tmp_path))

    assert problems(provider="builtin", model="reference") == []
    assert problems(provider="openai") == [
        "models[0].provider: the server's policy does not allow calling this host (policy providers.hosts)"
    ]
    assert problems(
        provider="openai-compatible", base_url="http://attacker.example/v1", api_key_env="AWS_SECRET"
    ) == [
        "models[0].base_url: the server's policy does not allow calling this host (policy providers.hosts)",
        "models[0].api_key_env: not a secret the server's policy lets requests use (policy secrets)",
    ]
    assert problems(provider="builtin", model="reference", api_key_secret="blk") == [
        "models[0].api_key_secret: not a secret the server's policy lets requests use (policy secrets)"
    ]


def test_a_secret_goes_only_to_its_hosts(policy: Policy, tmp_path: Path) -> None:
    def problems(**fields: Any) -> list[str]:
        return policy.problems(request(models=[model(**fields)]), str(tmp_path))

    assert problems(provider="openai", api_key_env="OPENAI_API_KEY") == []
    assert problems(
        provider="openai-compatible", base_url="http://127.0.0.1:8000/v1", api_key_env="OPENAI_API_KEY"
    ) == ["models[0].api_key_env: the server's policy allows this secret only for other hosts"]
    assert (
        problems(
            provider="openai-compatible", base_url="https://gateway.internal/v1", api_key_secret="gateway-key"
        )
        == []
    )
    assert problems(provider="openai-compatible", base_url="http://127.0.0.1:8000/v1") == []
    assert problems(provider="openai-compatible", base_url="http://127.0.0.1:22/v1") == [
        "models[0].base_url: the server's policy does not allow calling this host (policy providers.hosts)"
    ]


def test_webhooks_only_as_configured_targets(policy: Policy, tmp_path: Path) -> None:
    def problems(checked: Policy | None, *hooks: dict[str, Any]) -> list[str]:
        gate = {"on_pass": list(hooks)}
        return request_check(checked, str(tmp_path))(request(gate=gate))

    by_url = {"url": "https://attacker.example/hook", "secret_env": "DEPLOY_HOOK_SECRET"}
    assert problems(policy, {"target": "deploy-prod"}) == []
    assert problems(policy, by_url, {"target": "nope"}) == [
        "gate.on_pass[0].url: webhook URLs and secrets are set by the server; name one of its targets "
        "instead (target: ...; targets: deploy-prod)",
        "gate.on_pass[1].target: not a webhook target of the server (targets: deploy-prod)",
    ]
    assert problems(None, by_url) == []  # a person's own run, no policy: as before
    assert problems(None, {"target": "deploy-prod"}) == [
        "gate.on_pass[0].target: not a webhook target of the server (none configured (BENCHGATE_POLICY))"
    ]


def test_the_check_runs_before_any_file_is_read(tmp_path: Path) -> None:
    """Registry checks read a custom task's first rows; a refused location must never get there."""
    missing = tmp_path / "no-such-file.jsonl"
    data = {**BASE, "tasks": [custom_task(str(missing))]}
    with pytest.raises(RequestError) as error:
        parse_request(data, check=request_check(Policy(), str(tmp_path / "store")))
    assert error.value.problems == [f"tasks[0].dataset: {OUTSIDE}"]
    assert not os.path.exists(missing)


@pytest.mark.parametrize(
    "hook,problem",
    [
        (
            {"url": "https://d.example/", "target": "t"},
            "give url (with secret_env or secret_block) or target",
        ),
        ({"required": False}, "exactly one (got neither)"),
        ({"target": "t", "secret_env": "DEPLOY_HOOK_SECRET"}, "secret_env: not with target"),
        ({"target": "../t"}, "gate.on_pass[0].target: String should match pattern"),
    ],
)
def test_the_webhook_spec_names_the_field(hook: dict[str, Any], problem: str) -> None:
    with pytest.raises(RequestError) as error:
        parse_request({**BASE, "gate": {"on_pass": [hook]}})
    assert any(p.startswith("gate.on_pass[0]") and problem in p for p in error.value.problems), (
        error.value.problems
    )


def test_benchgate_run_keeps_its_behaviour_unless_a_policy_file_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from benchgate.interfaces.cli import app

    hook = {"url": "https://deploy.example/hook", "secret_env": "DEPLOY_HOOK_SECRET"}
    path = tmp_path / "request.json"
    monkeypatch.delenv("BENCHGATE_POLICY", raising=False)
    path.write_text(json.dumps({**BASE, "gate": {"on_pass": [{"target": "deploy-prod"}]}}))
    result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exit_code == 2 and "gate.on_pass[0].target: not a webhook target" in result.output
    policy = tmp_path / "policy.yaml"
    policy.write_text(EXAMPLE)
    monkeypatch.setenv("BENCHGATE_POLICY", str(policy))
    path.write_text(
        json.dumps({**BASE, "tasks": [custom_task("/etc/hosts.jsonl")], "gate": {"on_pass": [hook]}})
    )
    result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exit_code == 2
    assert f"tasks[0].dataset: {OUTSIDE}" in result.output and "gate.on_pass[0].url: " in result.output
    monkeypatch.setenv("BENCHGATE_POLICY", str(tmp_path / "missing.yaml"))
    result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exit_code == 2 and "missing.yaml" in result.output
