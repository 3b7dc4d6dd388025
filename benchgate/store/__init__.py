"""The result store (local or fsspec): generations, journals, scores, reports and history."""

from benchgate.store.store import GenerationWriter, Store, partition_name

__all__ = ["GenerationWriter", "Store", "partition_name"]
