"""`python -m deployments.serve`: every deployment of prefect.yaml served from this one process, no worker.

For a laptop or a single VM: the runs execute as subprocesses of this process. prefect.yaml stays
the one definition; this module only reads it.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import yaml
from prefect import Flow, serve
from prefect.events import DeploymentEventTrigger
from prefect.schedules import Cron

ROOT = Path(__file__).resolve().parents[1]


def load_flow(entrypoint: str) -> Flow[..., Any]:
    """`flows/nightly.py:benchmark_file` -> the flow object, imported as a module of this project."""
    path, name = entrypoint.rsplit(":", 1)
    return getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), name)


def runner_deployments(config_path: Path = ROOT / "prefect.yaml") -> list[Any]:
    config = yaml.safe_load(config_path.read_text())
    out = []
    for entry in config["deployments"]:
        triggers: list[Any] = [
            DeploymentEventTrigger(**{k: v for k, v in t.items() if k != "type"})
            for t in entry.get("triggers", [])
        ]
        schedules = [Cron(s["cron"], timezone=s.get("timezone", "UTC")) for s in entry.get("schedules", [])]
        out.append(
            load_flow(entry["entrypoint"]).to_deployment(
                name=entry["name"],
                description=entry.get("description"),
                tags=entry.get("tags"),
                parameters=entry.get("parameters"),
                schedules=schedules or None,
                triggers=triggers or None,
            )
        )
    return out


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    serve(*runner_deployments())
