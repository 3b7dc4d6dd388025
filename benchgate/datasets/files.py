"""Dataset revisions for local and fsspec files.

A content digest, so an edited file never reuses stale generations.
"""

from __future__ import annotations

import hashlib

import fsspec

from benchgate.errors import DatasetError


def file_revision(path: str) -> str:
    digest = hashlib.sha256()
    try:
        with fsspec.open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except (OSError, ValueError) as error:
        raise DatasetError(f"cannot read dataset file {path}: {error}") from None
    return "sha256:" + digest.hexdigest()[:16]
