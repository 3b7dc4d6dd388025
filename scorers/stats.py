"""Summary statistics for per-item metric values: the mean and a percentile bootstrap CI of the mean."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
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
RESAMPLES = 2000
CONFIDENCE = 0.95
_EXACT_FLOAT32 = 2**24  # every integer below it is a float32
_PRODUCT_ELEMENTS = 250_000  # 1 MB of float32 counts per matrix-vector product


def mean(values: Sequence[float]) -> float:
    """Arithmetic mean; NaN for no values (there is nothing to report, and 0 would look like a score)."""
    return math.fsum(values) / len(values) if len(values) else math.nan


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    *,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean over items.

    Items are resampled with replacement `resamples` times with a seeded generator, so the same values
    always give the same interval. One item gives (v, v); no items give (nan, nan).
    """
    _check_confidence(confidence)
    _check_resamples(resamples)
    data = np.asarray(values, dtype=np.float64)
    n = data.size
    if n == 0:
        return (math.nan, math.nan)
    if n == 1:
        return (float(data[0]), float(data[0]))
    means = np.empty(resamples, dtype=np.float64)

    def average(start: int, indices: np.ndarray) -> None:
        means[start : start + len(indices)] = data[indices].mean(axis=1)

    # The indices must be drawn in order from one generator, but NumPy releases the GIL both while
    # drawing and while averaging: a block is averaged on a thread while the next is drawn (50,000
    # items: 0.48 -> 0.33 s, at the end of a run). The same blocks, hence the same interval.
    with ThreadPoolExecutor(1, thread_name_prefix="bootstrap") as pool:
        averaging: Future[None] | None = None
        for start, indices in _resamples(n, resamples, seed):
            if averaging is not None:
                averaging.result()
            averaging = pool.submit(average, start, indices)
        assert averaging is not None
        averaging.result()
    return _percentiles(means, confidence)


class BootstrapCounts:
    """`bootstrap_ci`'s resamples of n items drawn before the values exist: how often each of the n
    positions is drawn in each resample.

    The draws depend on n and the seed alone, so they can be made while the model still answers;
    once the values are in, the resamples' sums are matrix-vector products (5,000 items: about 10 ms,
    against 0.05-0.1 s for `bootstrap_ci`'s draws, on the critical path at the end of a run). The
    interval is `bootstrap_ci`'s to the last bit where every resample's sum is exact in any order:
    integer values (exact match's 0 and 100, pass or fail) whose sums float32 holds (below 2**24).
    Other values get None, and take `bootstrap_ci`. Holds a byte per item and resample.
    """

    def __init__(self, n: int, *, resamples: int = RESAMPLES, seed: int = 0) -> None:
        if n < 2:
            raise ValueError(f"resampling needs at least 2 items, got {n}")
        _check_resamples(resamples)
        self.n = n
        self._counts = np.empty((resamples, n), dtype=np.uint8)
        self._fits = True  # no item drawn more than 255 times in one resample (all but never)
        for start, indices in _resamples(n, resamples, seed):
            rows = len(indices)
            indices += np.arange(0, rows * n, n)[:, np.newaxis]  # row r's positions, offset by r * n
            drawn = np.bincount(indices.ravel(), minlength=rows * n)
            self._fits = self._fits and int(drawn.max()) <= np.iinfo(np.uint8).max
            self._counts[start : start + rows] = drawn.reshape(rows, n)

    def interval(
        self, values: Sequence[float] | np.ndarray, *, confidence: float = CONFIDENCE
    ) -> tuple[float, float] | None:
        """`bootstrap_ci(values)` with these resamples, or None where it could differ (see above)."""
        _check_confidence(confidence)
        data = np.asarray(values, dtype=np.float64)
        whole = data.size == self.n and np.array_equal(data, np.round(data))  # NaN is never equal
        if not (self._fits and whole) or float(np.abs(data).max()) * self.n >= _EXACT_FLOAT32:
            return None
        column = data.astype(np.float32)
        sums = np.empty(len(self._counts), dtype=np.float64)
        rows = max(1, _PRODUCT_ELEMENTS // self.n)  # counts widened to float32 a block of rows at a time
        for start in range(0, len(self._counts), rows):
            sums[start : start + rows] = self._counts[start : start + rows].astype(np.float32) @ column
        # np.mean's own last step: the (exact) sum divided by the count, in float64.
        return _percentiles(sums / self.n, confidence)


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def _check_resamples(resamples: int) -> None:
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")


def _resamples(n: int, resamples: int, seed: int) -> Iterator[tuple[int, np.ndarray]]:
    """The resamples' item indices, in blocks of rows, drawn in order from one seeded generator."""
    rng = np.random.default_rng(seed)
    block = max(_BLOCK_ELEMENTS // n, min(_MIN_BLOCK_RESAMPLES, _MAX_BLOCK_ELEMENTS // n), 1)
    for start in range(0, resamples, block):
        yield start, rng.integers(0, n, size=(min(block, resamples - start), n))


def _percentiles(means: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return (float(lo), float(hi))
