"""pass@k against a brute-force count of k-subsets, and the aggregation helpers."""

from __future__ import annotations

from itertools import combinations

import pytest

from scorers.passk import default_ks, pass_at_k, per_problem_pass_at_k


def brute_force(n: int, c: int, k: int) -> float:
    """Fraction of all k-subsets of n samples (the first c correct) that contain a correct sample."""
    subsets = list(combinations(range(n), k))
    return sum(any(i < c for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", range(1, 9))
def test_matches_brute_force(n: int) -> None:
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_force(n, c, k), abs=1e-12), (n, c, k)


def test_edge_values() -> None:
    assert pass_at_k(10, 0, 1) == 0.0
    assert pass_at_k(10, 10, 10) == 1.0
    assert pass_at_k(10, 4, 1) == pytest.approx(0.4)
    assert pass_at_k(200, 1, 100) == pytest.approx(0.5)
    assert 0.0 < pass_at_k(1000, 1, 1) < 1e-2  # large n: no overflow


@pytest.mark.parametrize(("n", "c", "k"), [(5, 6, 1), (5, -1, 1), (5, 2, 0), (5, 2, 6)])
def test_rejects_impossible_arguments(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_per_problem_skips_k_above_n() -> None:
    result = per_problem_pass_at_k({"a": [True, False, False, False], "b": [False] * 12}, [1, 10])
    assert result == {"a": {"pass@1": pytest.approx(0.25)}, "b": {"pass@1": 0.0, "pass@10": 0.0}}


def test_default_ks() -> None:
    assert default_ks(1) == [1]
    assert default_ks(9) == [1]
    assert default_ks(10) == [1, 10]
    assert default_ks(200) == [1, 10, 100]
