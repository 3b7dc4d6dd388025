"""Locates the shared reference data (../shared/data beside the repository) for the parity tests."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder; its absence fails the test (parity must never be skipped silently)."""
    if not (SHARED_DATA / "SOURCES.md").is_file():
        pytest.fail(
            f"shared reference data not found at {SHARED_DATA} (expected ../shared/data beside the "
            f"repository root {REPO_ROOT}); the parity tests need it — restore it, do not skip them",
            pytrace=False,
        )
    return SHARED_DATA
