"""The project uses its dependencies through their public APIs only, and declares every one it imports.

A private attribute (`client._transport_for_url(url)._pool`, `Secret.load(name, _sync=True)`,
`dataset._fingerprint`) can change or vanish in any patch release; an undeclared dependency works only
while something else happens to install it.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE_ROOTS = ("benchgate", "flows", "tasks", "scorers", "deployments", "bench")
# bench/ scripts import each other by module name (they run as `python bench/x.py`).
OWN_PACKAGES = frozenset({*SOURCE_ROOTS, "tests", *(path.stem for path in (ROOT / "bench").glob("*.py"))})
GUARDED = frozenset({"aiohttp", "aiohttp_socks", "httpx", "prefect", "datasets", "yarl"})
# Private attributes of objects from those libraries that this project has reached for before.
KNOWN_PRIVATE_ATTRIBUTES = frozenset({"_pool", "_transport", "_transport_for_url", "_mounts", "_fingerprint"})
PRIVATE_KEYWORDS = frozenset({"_sync"})  # Prefect's async_dispatch switch


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def source_files() -> Iterator[Path]:
    for root in SOURCE_ROOTS:
        yield from sorted((ROOT / root).rglob("*.py"))


def parsed() -> Iterator[tuple[str, ast.Module]]:
    for path in source_files():
        yield str(path.relative_to(ROOT)), ast.parse(path.read_text(encoding="utf-8"), str(path))


def private_uses(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """(line, what) for each private name of a guarded library the module reaches for."""
    aliases: set[str] = set()  # names bound to a guarded module: `import httpx`, `from prefect import flows`
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in GUARDED:
                    aliases.add((alias.asname or alias.name).split(".")[0])
                    if any(is_private(part) for part in alias.name.split(".")):
                        yield node.lineno, f"import {alias.name}"
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] not in GUARDED:
                continue
            if any(is_private(part) for part in parts):
                yield node.lineno, f"from {node.module} import ..."
            for alias in node.names:
                if is_private(alias.name):
                    yield node.lineno, f"from {node.module} import {alias.name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and is_private(node.attr):
            receiver = node.value
            if isinstance(receiver, ast.Name) and receiver.id in aliases:
                yield node.lineno, f"{receiver.id}.{node.attr}"
            elif node.attr in KNOWN_PRIVATE_ATTRIBUTES and not (
                isinstance(receiver, ast.Name) and receiver.id in ("self", "cls")
            ):
                yield node.lineno, f"<object>.{node.attr}"
        elif isinstance(node, ast.keyword) and node.arg in PRIVATE_KEYWORDS:
            yield node.lineno, f"{node.arg}= keyword"


def test_no_private_api_of_http_clients_prefect_or_datasets() -> None:
    found = [
        f"{name}:{line}: {what}" for name, tree in parsed() for line, what in sorted(set(private_uses(tree)))
    ]
    assert not found, "private APIs of dependencies used:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "code",
    [
        "transport = client._transport_for_url(url)._pool",
        "Secret.load(name, _sync=True)",
        "value = dataset._fingerprint",
        "import httpx\nhttpx._utils.get_environment_proxies()",
        "from prefect._internal.compatibility.async_dispatch import async_dispatch",
        "from prefect.utilities.asyncutils import _is_acceptable_callable",
        "import datasets.fingerprint as fp\nfp._CACHING_ENABLED",
    ],
)
def test_the_check_sees_each_kind_of_private_use(code: str) -> None:
    assert list(private_uses(ast.parse(code)))


def test_the_check_leaves_public_and_own_names_alone() -> None:
    code = "import httpx\nself._pool = []\nprint(httpx.__version__, self._pool, other._private)"
    assert list(private_uses(ast.parse(code))) == []


def normalise(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def declared_dependencies() -> set[str]:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = (re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement) for requirement in project["dependencies"])
    return {normalise(match.group()) for match in names if match}


def imported_packages() -> dict[str, str]:
    """Top-level name -> first file:line importing it, for every third-party import of the project."""
    first: dict[str, str] = {}
    for name, tree in parsed():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top not in OWN_PACKAGES and top not in sys.stdlib_module_names and top != "__future__":
                    first.setdefault(top, f"{name}:{node.lineno}")
    return first


def test_every_imported_package_is_a_declared_dependency() -> None:
    declared = declared_dependencies()
    providers = importlib.metadata.packages_distributions()
    missing = []
    for package, where in sorted(imported_packages().items()):
        distributions = {normalise(d) for d in providers.get(package, [])}
        if not distributions & declared:
            name = ", ".join(sorted(distributions)) or "no installed distribution"
            missing.append(f"{where}: imports {package} ({name}), not in [project].dependencies")
    assert not missing, "\n".join(missing)
