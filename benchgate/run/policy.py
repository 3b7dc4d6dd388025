"""The operator's policy for requests someone else wrote: what they may read, call, sign with and notify.

The HTTP API runs requests from callers who hold only a token, and a deployment run takes its request
from whoever reaches Prefect; neither may turn that into a key to the host. The policy (a YAML file
named by BENCHGATE_POLICY, written by the operator) lists which dataset locations a request may read,
which provider hosts it may call, which secrets it may send to which of those hosts, and the webhook
targets it may name. Everything is checked on the parsed request, before any file is read or anything
is called; a problem names the field and the rule, never a file's content, a resolved path or a secret.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, HttpUrl, ValidationError, field_validator, model_validator

from benchgate.errors import ConfigurationError
from benchgate.evaltasks import BUILTIN
from benchgate.spec.base import StrictModel, validation_problems
from benchgate.spec.files import read_structured_file
from benchgate.spec.request import BenchmarkRequest, ModelSpec

BUNDLED_DATA = Path(__file__).resolve().parents[1] / "data"
HUB_PREFIX = "hf:"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_LOCAL_PROTOCOLS = ("file", "local")


@dataclass(frozen=True)
class Endpoint:
    """A host pattern of the policy: `host` (on the scheme's default port), `host:port`, or a URL prefix."""

    host: str
    port: int | None
    scheme: str | None = None
    path: str = ""

    @classmethod
    def parse(cls, entry: str) -> Endpoint:
        """Raises ValueError for anything but host, host:port or an http(s) URL without credentials."""
        is_url = "://" in entry
        parts = _split(entry if is_url else f"//{entry}")
        if parts is None or (not is_url and parts[3]):
            raise ValueError(f"expected host, host:port or an http(s) URL prefix, got {entry!r}")
        scheme, host, port, path = parts
        return cls(host, port, scheme or None, path.rstrip("/") if is_url else "")

    def matches(self, url: str) -> bool:
        parts = _split(url)
        if parts is None:
            return False
        scheme, host, port, path = parts
        if not scheme or host != self.host or (self.scheme and scheme != self.scheme):
            return False
        effective = port or _DEFAULT_PORTS[scheme]
        if effective != (self.port or _DEFAULT_PORTS.get(self.scheme or scheme)):
            return False
        return not self.path or path == self.path or path.startswith(self.path + "/")


def _split(url: str) -> tuple[str, str, int | None, str] | None:
    """(scheme, host, port, path) of an http(s) URL, or None when it could reach anywhere but its host:
    credentials (`a@b`), backslashes, query strings, `.`/`..` segments or an unparsable port."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme and scheme not in _DEFAULT_PORTS:
        return None
    if "@" in parts.netloc or "\\" in url or parts.query or parts.fragment or not parts.hostname:
        return None
    segments = parts.path.split("/")
    if any(s in (".", "..") or s.lower().replace("%2e", ".") in (".", "..") for s in segments):
        return None
    return scheme, parts.hostname.lower().rstrip("."), port, parts.path


class DatasetRules(StrictModel):
    """Besides these, requests may read the store and benchgate's bundled data, and built-in tasks their
    own hub datasets."""

    roots: list[str] = Field(default_factory=list)  # local directories; relative: to the policy file
    urls: list[str] = Field(default_factory=list)  # fsspec URL prefixes, e.g. s3://bucket/evals/
    hub: list[str] = Field(default_factory=list)  # hf: repositories a custom task may load

    @field_validator("urls")
    @classmethod
    def _remote_prefixes(cls, urls: list[str]) -> list[str]:
        for url in urls:
            protocol, _, rest = url.partition("://")
            if not rest or "::" in url:
                raise ValueError(f"expected a URL prefix such as s3://bucket/path/, got {url!r}")
            if protocol in _LOCAL_PROTOCOLS:
                raise ValueError(f"{url!r}: local directories go in roots, where symlinks are resolved")
        return urls


class ProviderRules(StrictModel):
    hosts: list[str] = Field(default_factory=list)

    @field_validator("hosts")
    @classmethod
    def _endpoints(cls, hosts: list[str]) -> list[str]:
        for host in hosts:
            Endpoint.parse(host)
        return hosts


class SecretGrant(StrictModel):
    """A secret requests may name, by environment variable or Prefect Secret block, and where it may go."""

    env: str | None = None
    block: str | None = None
    hosts: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_reference(self) -> SecretGrant:
        if (self.env is None) == (self.block is None):
            raise ValueError("give env or block, exactly one")
        for host in self.hosts:
            Endpoint.parse(host)
        return self


class WebhookTarget(StrictModel):
    """A hook requests may name by its key: the URL and the signing secret stay on the server."""

    url: HttpUrl
    secret_env: str | None = None
    secret_block: str | None = None

    @model_validator(mode="after")
    def _one_secret(self) -> WebhookTarget:
        if (self.secret_env is None) == (self.secret_block is None):
            raise ValueError("give secret_env or secret_block, exactly one (a target is always signed)")
        return self


class Policy(StrictModel):
    """The default (an empty file) allows the store, the bundled data and builtin models, nothing else."""

    datasets: DatasetRules = Field(default_factory=DatasetRules)
    providers: ProviderRules = Field(default_factory=ProviderRules)
    secrets: list[SecretGrant] = Field(default_factory=list)
    webhooks: dict[str, WebhookTarget] = Field(default_factory=dict)

    def problems(self, request: BenchmarkRequest, store: str) -> list[str]:
        """What `request` may not do here, one 'field: rule' line each; `store` is the server's own store
        (never the request's or a flow parameter's, which a caller could point anywhere)."""
        store = store.removeprefix("file://")
        problems: list[str] = []
        for i, model in enumerate(request.models):
            problems.extend(f"models[{i}].{p}" for p in self._model_problems(model))
        for i, task in enumerate(request.tasks):
            locations = {"path": task.path, "examples.path": task.examples.path if task.examples else None}
            if task.task not in BUILTIN and not task.path:  # a custom task's `dataset` is its location
                locations["dataset"] = task.dataset
            for field, location in locations.items():
                problem = location and self._dataset_problem(location, store)
                if problem:
                    problems.append(f"tasks[{i}].{field}: {problem}")
        return problems + hook_problems(request, self.webhooks, urls_allowed=False)

    def _model_problems(self, model: ModelSpec) -> list[str]:
        endpoint = _endpoint(model)
        problems = []
        if endpoint and not any(Endpoint.parse(h).matches(endpoint) for h in self.providers.hosts):
            field = "base_url" if model.base_url else "provider"
            problems.append(
                f"{field}: the server's policy does not allow calling this host (policy providers.hosts)"
            )
        for field, kind, name in (
            ("api_key_env", "env", model.api_key_env),
            ("api_key_secret", "block", model.api_key_secret),
        ):
            if name is None:
                continue
            grants = [g for g in self.secrets if getattr(g, kind) == name]
            if not grants:
                problems.append(
                    f"{field}: not a secret the server's policy lets requests use (policy secrets)"
                )
            elif not endpoint or not any(
                Endpoint.parse(h).matches(endpoint) for g in grants for h in g.hosts
            ):
                problems.append(f"{field}: the server's policy allows this secret only for other hosts")
        return problems

    def _dataset_problem(self, location: str, store: str) -> str | None:
        if location.startswith(HUB_PREFIX):
            repo = location.removeprefix(HUB_PREFIX).partition("@")[0]
            allowed = repo in self.datasets.hub
            return None if allowed else "hub dataset not allowed by the server's policy (policy datasets.hub)"
        if "::" in location:
            return "chained fsspec URLs are not allowed by the server's policy"
        if "://" in location:
            prefixes = [*self.datasets.urls, *([store] if "://" in store else [])]
            if ".." in location.split("/") or not any(_under_prefix(location, p) for p in prefixes):
                return "outside the dataset URLs the server's policy allows (policy datasets.urls)"
            return None
        if ".." in Path(location).parts:
            return "'..' is not allowed in a dataset path (policy datasets.roots)"
        roots = [*self.datasets.roots, str(BUNDLED_DATA), *([] if "://" in store else [store])]
        real = os.path.realpath(location)
        if not any(_inside(real, os.path.realpath(root)) for root in roots):
            return "outside the dataset directories the server's policy allows (policy datasets.roots)"
        return None


def hook_problems(
    request: BenchmarkRequest, targets: Mapping[str, WebhookTarget], *, urls_allowed: bool
) -> list[str]:
    """Hooks naming a target that is not configured, and (unless `urls_allowed`) hooks giving a URL."""
    problems = []
    for event in ("on_pass", "on_fail", "on_inconclusive"):
        for j, hook in enumerate(getattr(request.gate, event) if request.gate else []):
            where = f"gate.{event}[{j}]"
            if hook.target is None and not urls_allowed:
                problems.append(
                    f"{where}.url: webhook URLs and secrets are set by the server; name one of "
                    f"its targets instead (target: ...; {_targets(targets)})"
                )
            elif hook.target is not None and hook.target not in targets:
                problems.append(f"{where}.target: not a webhook target of the server ({_targets(targets)})")
    return problems


def request_check(policy: Policy | None, store: str) -> Callable[[BenchmarkRequest], list[str]]:
    """What `parse_request` checks: the policy; without one (a person's own run) only that no webhook
    target is named, since there is no configuration to resolve it from."""
    if policy is None:
        return partial(hook_problems, targets={}, urls_allowed=True)
    return partial(policy.problems, store=store)


def _endpoint(model: ModelSpec) -> str | None:
    """The URL a model's calls go to, or None for a provider that calls nothing (builtin) or is unknown."""
    from benchgate.providers import PROVIDERS, provider_class
    from benchgate.providers.http import HttpProvider

    if model.provider not in PROVIDERS:
        return None  # the registry check reports it
    cls = provider_class(model.provider)
    if not issubclass(cls, HttpProvider):
        return None
    return model.base_url or cls.default_base_url


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _under_prefix(location: str, prefix: str) -> bool:
    prefix = prefix.rstrip("/")
    return location == prefix or location.startswith(prefix + "/")


def _targets(webhooks: Mapping[str, WebhookTarget]) -> str:
    return f"targets: {', '.join(sorted(webhooks))}" if webhooks else "none configured (BENCHGATE_POLICY)"


def load_policy(path: str | Path) -> Policy:
    """The policy file, strictly (unknown keys are errors); relative dataset roots are relative to it."""
    path = Path(path)
    data = read_structured_file(path)
    try:
        policy = Policy.model_validate({} if data is None else data)  # an empty file: the defaults
    except ValidationError as error:
        lines = "\n".join(f"  {p}" for p in validation_problems(error, "policy"))
        raise ConfigurationError(f"policy file {path} is invalid:\n{lines}") from None
    roots = [str(path.resolve().parent / root) for root in policy.datasets.roots]
    return policy.model_copy(update={"datasets": policy.datasets.model_copy(update={"roots": roots})})


def configured_targets() -> Mapping[str, WebhookTarget]:
    """The webhook targets of the policy in force here (none without a policy file)."""
    policy = configured_policy()
    return policy.webhooks if policy else {}


def configured_policy() -> Policy | None:
    """The policy file named by BENCHGATE_POLICY, or None when none is set."""
    from benchgate.settings import settings

    path = settings().policy
    return load_policy(path) if path else None


def policy_in_force(untrusted: bool) -> Policy | None:
    """The configured policy; without one, the safe defaults for an `untrusted` request (one through the
    API or a deployment run) and no policy at all for a person's own `benchgate run`."""
    configured = configured_policy()
    if configured is not None:
        return configured
    return Policy() if untrusted else None
