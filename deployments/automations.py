"""`python -m deployments.automations`: create deployments/automations.yaml's automations on the server.

Prefect's automation actions name blocks by id, which differs on every server; the file names them as
`<block type>/<block name>` so it can be kept in git, and this resolves them. Automations of the same
name are replaced, so running it again after editing the file updates them.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any
from uuid import UUID

import yaml
from prefect.client.orchestration import PrefectClient, get_client
from prefect.events.schemas.automations import AutomationCore

ROOT = Path(__file__).resolve().parents[1]
AUTOMATIONS = ROOT / "deployments" / "automations.yaml"


async def _resolve_block(client: PrefectClient, reference: str) -> str:
    """`webhook/benchgate-alerts` -> that block document's id; a UUID is kept as it is."""
    try:
        return str(UUID(reference))
    except ValueError:
        block_type, _, name = reference.partition("/")
        document = await client.read_block_document_by_name(name, block_type)
        return str(document.id)


async def load_automations(client: PrefectClient, path: Path = AUTOMATIONS) -> list[AutomationCore]:
    """The file's automations, validated by Prefect, with block references resolved on this server."""
    data = yaml.safe_load(path.read_text())
    entries: list[dict[str, Any]] = data["automations"] if isinstance(data, dict) else data
    automations = []
    for entry in entries:
        for action in entry.get("actions", []):
            if "block_document_id" in action:
                action["block_document_id"] = await _resolve_block(client, action["block_document_id"])
        automations.append(AutomationCore.model_validate(entry))
    return automations


async def apply_automations(client: PrefectClient, path: Path = AUTOMATIONS) -> dict[str, UUID]:
    """Create the file's automations, replacing those of the same name; returns name -> id."""
    created = {}
    for automation in await load_automations(client, path):
        for existing in await client.read_automations_by_name(automation.name):
            await client.delete_automation(existing.id)
        created[automation.name] = await client.create_automation(automation)
    return created


async def _main(path: Path) -> None:
    async with get_client() as client:
        for name, automation_id in (await apply_automations(client, path)).items():
            print(f"automation {name!r}: {automation_id}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--file", type=Path, default=AUTOMATIONS)
    asyncio.run(_main(parser.parse_args().file))
