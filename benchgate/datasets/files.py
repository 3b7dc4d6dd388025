"""Dataset revisions for local and fsspec files, and for Arrow tables (a `datasets` dataset on disk).

A content digest, so an edited dataset never reuses stale generations.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import fsspec

from benchgate.errors import DatasetError

if TYPE_CHECKING:
    import pyarrow as pa


def file_revision(path: str) -> str:
    digest = hashlib.sha256()
    try:
        with fsspec.open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except (OSError, ValueError) as error:
        raise DatasetError(f"cannot read dataset file {path}: {error}") from None
    return "sha256:" + digest.hexdigest()[:16]


class ArrowTable(Protocol):
    """A pyarrow.Table, or the wrapper of one that `datasets.Dataset.data` returns."""

    @property
    def schema(self) -> pa.Schema: ...

    def to_batches(self) -> Sequence[pa.RecordBatch]: ...


def arrow_revision(table: ArrowTable) -> str:
    """Digest of an Arrow table's schema and record batches.

    Computed from the data (not from `datasets`' private fingerprint), so the same rows give the same
    revision however often and wherever they are saved, and any change of a value or a type changes it.
    """
    digest = hashlib.sha256(table.schema.serialize())
    for batch in table.to_batches():
        digest.update(batch.serialize())
    return "sha256:" + digest.hexdigest()[:16]
