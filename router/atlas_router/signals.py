"""Difficulty signals, each in [0, 1], and the difficulty D and bin they give (PLATFORM.md §5).

- pattern: 1 - the best verified pattern's similarity (a problem like one solved before is easier);
- retrieval: 1 - the retrieval confidence of a named project's code (PageIndex; absent when no project is named);
- complexity: the mean of words/500, lines/50 and code fences/3, each capped at 1;
- lens: the Lens's G(x), when its weights estimate difficulty;
- untested: 1 when the problem has no public tests (nothing can verify a candidate), else 0.

A signal a solve lacks drops out and the weights of the rest are renormalised, so D stays in [0, 1]."""

from __future__ import annotations

BINS = ("LOW", "MEDIUM", "HIGH", "EXTREME")


def complexity(text: str) -> float:
    words = len(text.split()) / 500
    lines = len(text.splitlines()) / 50
    fences = text.count("```") / 3
    return round(sum(min(1.0, x) for x in (words, lines, fences)) / 3, 4)


def difficulty(signals: dict[str, float], weights: dict[str, float]) -> float:
    total = sum(weights.get(name, 0.0) for name in signals)
    if total <= 0:
        return 0.5  # no weighted signal: the middle, where every route is plausible
    return round(sum(weights.get(name, 0.0) * value for name, value in signals.items()) / total, 4)


def bin_of(value: float, bounds: list[float]) -> str:
    return BINS[sum(1 for b in bounds if value >= b)]
