"""What a server saw over time, measured against a limit: the tests of limits share these."""

from __future__ import annotations


def starts_within(times: list[float], window: float) -> int:
    """The most request arrivals in any `window` seconds."""
    times = sorted(times)
    return max(sum(1 for t in times[i:] if t < start + window) for i, start in enumerate(times))


def burst(arrivals: list[tuple[float, int]], per_second: float) -> float:
    """The most tokens that arrived in any window beyond what `per_second` refills in it: a leaky bucket
    of that size and rate would have let them all through."""
    arrivals = sorted(arrivals)
    return max(
        sum(tokens for _, tokens in arrivals[i : j + 1]) - per_second * (arrivals[j][0] - arrivals[i][0])
        for i in range(len(arrivals))
        for j in range(i, len(arrivals))
    )
