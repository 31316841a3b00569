"""pass@k against values worked out by hand, and the bootstrap interval's basic properties."""

from __future__ import annotations

import pytest

from atlas_bench.metrics import bootstrap, pass_at_k


@pytest.mark.parametrize(("n", "c", "k", "expected"), [
    (10, 3, 1, 0.3),  # c / n
    (10, 3, 5, 1 - 21 / 252),  # 1 - C(7,5)/C(10,5)
    (4, 1, 2, 0.5),  # 1 - C(3,2)/C(4,2) = 1 - 3/6
    (5, 0, 3, 0.0),
    (5, 5, 5, 1.0),
    (10, 8, 3, 1.0),  # fewer than k wrong samples: every k-subset has a correct one
    (200, 13, 100, 1 - __import__("math").comb(187, 100) / __import__("math").comb(200, 100)),
])
def test_pass_at_k_matches_hand_computed_values(n: int, c: int, k: int, expected: float) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_pass_at_k_refuses_impossible_counts() -> None:
    for n, c, k in ((5, 6, 1), (5, 1, 0), (5, 1, 6)):
        with pytest.raises(ValueError, match="pass@k needs"):
            pass_at_k(n, c, k)


def test_bootstrap_interval() -> None:
    assert bootstrap([1.0] * 50) == [1.0, 1.0]
    values = [1.0] * 30 + [0.0] * 70
    low, high = bootstrap(values)
    assert low < 0.3 < high and low > 0.15 and high < 0.45
    assert bootstrap(values) == [low, high]  # seeded
    assert bootstrap([0.5]) == [0.5, 0.5] and bootstrap([]) == [0.0, 0.0]
