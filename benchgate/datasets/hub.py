"""Loading built-in datasets from the Hugging Face hub, with a useful error when it is out of reach."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from benchgate.errors import DatasetError


def load_hub_rows(
    repo: str, *, subset: str | None, split: str, revision: str | None, task_name: str
) -> tuple[str, Iterator[dict[str, Any]]]:
    """Rows of a hub dataset and the commit they came from (recorded in cache keys and the report)."""
    try:
        import datasets
        from huggingface_hub import HfApi

        resolved = HfApi().dataset_info(repo, revision=revision).sha or revision or "unknown"
        rows = datasets.load_dataset(repo, subset, split=split, revision=resolved)
    except Exception as error:  # the hub client raises many unrelated types; all mean "not reachable"
        raise DatasetError(
            f"cannot load {repo!r} ({split}) from the Hugging Face hub for task {task_name!r}: "
            f"{type(error).__name__}: {str(error)[:200].rstrip('.')}. Offline? Point the task at a local "
            f"copy in the dataset's original format with `path:` (see README, 'Datasets')."
        ) from None
    return resolved, iter(rows)
