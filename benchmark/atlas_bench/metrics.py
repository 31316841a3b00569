"""The numbers a run reports: the unbiased pass@k estimator and a bootstrap interval over tasks."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimator of Chen et al. (2021) for one task with ``c`` correct of ``n`` samples:
    1 - C(n-c, k) / C(n, k), computed as a product so large n stays exact enough."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (got n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def bootstrap(values: Sequence[float], rounds: int = 2000, level: float = 0.95, seed: int = 0) -> list[float]:
    """A percentile interval of the mean, resampling tasks with replacement (seeded: a report is
    reproducible). One value or none gives the value itself."""
    if len(values) < 2:
        return [float(values[0]), float(values[0])] if values else [0.0, 0.0]
    rng = random.Random(seed)  # noqa: S311 (resampling, not secrets)
    means = sorted(sum(rng.choices(values, k=len(values))) / len(values) for _ in range(rounds))
    tail = (1 - level) / 2
    return [round(means[int(tail * rounds)], 4), round(means[int((1 - tail) * rounds) - 1], 4)]
