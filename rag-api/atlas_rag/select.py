"""Choosing one candidate without the hidden tests: public tests first, then CodeT-style agreement on inputs
the model wrote (candidates that give the same outputs form a cluster; a cluster scores its size times one plus
the self-written expectations it meets), then a pluggable score (the Geometric Lens, later), then fewer tokens."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Literal, Protocol

Origin = Literal["sample", "repair", "carried"]


@dataclass
class Candidate:
    index: int
    origin: Origin
    temperature: float
    seed: int | None
    code: str | None
    tokens: int
    key: str = ""  # the normalised code: candidates with the same key are one program
    duplicate_of: int | None = None
    copies: int = 1  # samples that produced this program (itself included)
    verdict: str = "untested"
    public_passed: int = 0
    public_total: int = 0
    failure: dict[str, str | None] | None = None
    outputs: tuple[str, ...] | None = None  # its outputs on the self-test inputs
    self_passed: int | None = None
    agreement: int | None = None
    score: float | None = None
    repaired: bool = False
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def unique(self) -> bool:
        return self.code is not None and self.duplicate_of is None

    @property
    def public_ok(self) -> bool:
        return self.verdict == "passed"


class Scorer(Protocol):
    """Orders candidates the tests cannot tell apart; lower is better (an energy). None: no opinion."""

    async def score(self, problem_text: str, codes: list[str]) -> list[float | None]: ...


def agree(candidates: list[Candidate]) -> None:
    """Fills ``agreement``: the copies of every program in the candidate's output cluster, times one plus the
    self-written expectations the cluster meets. Programs that fail on every input form no cluster."""
    clusters: dict[tuple[str, ...], int] = defaultdict(int)
    for c in candidates:
        if c.unique and c.outputs is not None and not all(o.startswith("!") for o in c.outputs):
            clusters[c.outputs] += c.copies
    for c in candidates:
        if not c.unique or c.outputs is None:
            continue
        size = clusters.get(c.outputs, 0)
        c.agreement = size * (1 + (c.self_passed or 0)) if size else 0


# How far a failing program got, best first: it ran and answered wrongly, it crashed or ran out, it never ran.
# (The count of tests passed is no measure: the sandbox stops each candidate at its first failure, and tests
# run in parallel, so how many others finished first depends on timing.)
PROGRESS = {"passed": 0, "TestFailure": 1, "OutputLimit": 2, "RuntimeError": 2, "Timeout": 2, "MemoryLimit": 2,
            "untested": 3, "Skipped": 3, "CompileError": 4, "SyntaxError": 4}


def rank_key(c: Candidate) -> tuple[float, ...]:
    """Selection order over distinct programs: lower sorts first."""
    return (
        PROGRESS.get(c.verdict, 3),
        -(c.agreement or 0),
        c.score is None, c.score or 0.0,  # a scorer's "no opinion" ranks after every opinion
        c.tokens,
        c.index,
    )


def choose(candidates: list[Candidate]) -> Candidate | None:
    pool = [c for c in candidates if c.unique]
    return min(pool, key=rank_key) if pool else None
