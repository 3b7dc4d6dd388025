"""Summary statistics for per-item metric values: the mean and a percentile bootstrap CI of the mean."""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

# Resamples are drawn in blocks, bounding memory for large n (2000 resamples x 11,873 SQuAD items
# would otherwise be ~190 MB of indices); the block size does not change the draws, hence the interval.
# Blocks under 4 MiB are not handed huge pages by NumPy and reuse the heap freed by the block before,
# where larger ones are faulted in anew: the last interval of a run (5,000 items, in the generation
# process) took 0.08-0.10 s against 0.10-0.20 s with 16 MB blocks. But each block takes the GIL back
# a few times, each a switch interval when a thread busy in Python holds it: hence at least 40
# resamples a block (at most 50 blocks of the default 2,000), unless that is more than 16 MB of indices.
_BLOCK_ELEMENTS = 500_000
_MAX_BLOCK_ELEMENTS = 2_000_000
_MIN_BLOCK_RESAMPLES = 40


def mean(values: Sequence[float]) -> float:
    """Arithmetic mean; NaN for no values (there is nothing to report, and 0 would look like a score)."""
    return math.fsum(values) / len(values) if len(values) else math.nan


def bootstrap_ci(
    values: Sequence[float] | np.ndarray, *, confidence: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean over items.

    Items are resampled with replacement `resamples` times with a seeded generator, so the same values
    always give the same interval. One item gives (v, v); no items give (nan, nan).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    data = np.asarray(values, dtype=np.float64)
    n = data.size
    if n == 0:
        return (math.nan, math.nan)
    if n == 1:
        return (float(data[0]), float(data[0]))
    rng = np.random.default_rng(seed)
    block = max(_BLOCK_ELEMENTS // n, min(_MIN_BLOCK_RESAMPLES, _MAX_BLOCK_ELEMENTS // n), 1)
    means = np.empty(resamples, dtype=np.float64)

    def average(start: int, indices: np.ndarray) -> None:
        means[start : start + len(indices)] = data[indices].mean(axis=1)

    # The indices must be drawn in order from one generator, but NumPy releases the GIL both while
    # drawing and while averaging: a block is averaged on a thread while the next is drawn (50,000
    # items: 0.48 -> 0.33 s, at the end of a run). The same blocks, hence the same interval.
    with ThreadPoolExecutor(1, thread_name_prefix="bootstrap") as pool:
        averaging: Future[None] | None = None
        for start in range(0, resamples, block):
            indices = rng.integers(0, n, size=(min(block, resamples - start), n))
            if averaging is not None:
                averaging.result()
            averaging = pool.submit(average, start, indices)
        assert averaging is not None
        averaging.result()
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return (float(lo), float(hi))
