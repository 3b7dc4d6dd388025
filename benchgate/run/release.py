"""`model.released`: the event that announces a new model, and the request that gates it against production.

The template is an ordinary request naming the current production model(s) and the evaluation tasks;
its gate rules say `candidate` wherever the released model belongs. The event payload (id, provider,
model, base_url, ...) becomes that candidate, so one template serves every release.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from benchgate.errors import RequestError
from benchgate.evaltasks import metric_infos
from benchgate.run.validation import parse_request
from benchgate.spec.files import read_structured_file
from benchgate.spec.request import BenchmarkRequest, resolve_relative_paths

EVENT = "model.released"
RESOURCE_PREFIX = "model."
CANDIDATE = "candidate"
PAYLOAD_KEYS = ("id", "provider", "model", "base_url", "api_key_env", "api_key_secret", "params")


def release_payload(
    model_id: str,
    provider: str,
    model: str | None = None,
    base_url: str | None = None,
    api_key_env: str | None = None,
) -> dict[str, Any]:
    payload = {
        "id": model_id,
        "provider": provider,
        "model": model,
        "base_url": base_url,
        "api_key_env": api_key_env,
    }
    return {k: v for k, v in payload.items() if v is not None}


def load_template(path: str | Path) -> dict[str, Any]:
    """The template as data, with dataset paths made relative to the template file."""
    path = Path(path)
    data = read_structured_file(path)
    if not isinstance(data, dict):
        raise RequestError(["(top level): expected a mapping"], str(path))
    return resolve_relative_paths(data, path.resolve().parent)


def release_request(template: dict[str, Any], payload: dict[str, Any]) -> BenchmarkRequest:
    """The template plus the released model, gated against the template's first (production) model."""
    unknown = sorted(set(payload) - set(PAYLOAD_KEYS))
    problems = [f"payload.{key}: unknown key (expected {', '.join(PAYLOAD_KEYS)})" for key in unknown]
    if not isinstance(payload.get("id"), str) or not payload.get("id"):
        problems.append("payload.id: required, the released model's id")
    if not payload.get("provider"):
        problems.append("payload.provider: required")
    if problems:
        raise RequestError(problems, "model.released payload")
    data = copy.deepcopy(template)
    candidate_id = payload["id"]
    data["models"] = [m for m in data.get("models", []) if m.get("id") != candidate_id]
    if not data["models"]:
        raise RequestError(
            ["models: the template names no production model to compare with"], "release template"
        )
    production_id = data["models"][0].get("id")
    data["models"].append({k: v for k, v in payload.items() if v is not None})
    data["name"] = f"{data.get('name', 'Release')} · {candidate_id}"
    data["tags"] = [*data.get("tags", []), "release", f"candidate:{candidate_id}"]
    gate = data["gate"] = data.get("gate") or {}
    gate.setdefault("baseline", production_id)
    if not gate.get("rules"):
        gate["rules"] = _default_rules(data)
    for rule in gate["rules"]:
        for key in ("model", "no_worse_than", "better_than"):
            if rule.get(key) == CANDIDATE:
                rule[key] = candidate_id
    return parse_request(data, "release request")


def _default_rules(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Without rules in the template: the candidate no worse than production on each task's first metric."""
    request = parse_request({**data, "gate": None}, "release template")
    return [
        {
            "model": CANDIDATE,
            "task": task.task,
            "metric": metric_infos(task)[0].name,
            "no_worse_than": "baseline",
        }
        for task in request.tasks
    ]


async def emit_release(payload: dict[str, Any]) -> str:
    """Emit `model.released` for resource `model.<id>` to the configured Prefect API; returns the event id."""
    from prefect.events import Event
    from prefect.events.clients import get_events_client
    from prefect.events.schemas.events import Resource

    resource = Resource({"prefect.resource.id": RESOURCE_PREFIX + payload["id"]})
    event = Event(event=EVENT, resource=resource, payload=payload)
    async with get_events_client() as client:
        await client.emit(event)
    return str(event.id)
