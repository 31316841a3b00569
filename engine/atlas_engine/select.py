"""Choosing one candidate without the hidden tests: public tests first; then, on the checks the model wrote
(``checks``), fewer crashes and time-outs, then agreement (candidates that give the same outputs form a cluster,
AlphaCode/CodeT-style; a cluster scores its size times one plus the self-written expectations it meets); then a
pluggable score (the Geometric Lens); then fewer tokens."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Literal, Protocol

Origin = Literal["sample", "repair", "carried", "pattern"]


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
    faults: int = 0  # checks it crashed or ran out of time on (checks most programs fault on do not count)
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


UNKNOWN = "?"  # a check the deadline stopped before it ran: no verdict on the program


def agree(candidates: list[Candidate]) -> None:
    """Fills ``faults`` and ``agreement`` from the programs' outputs on the checks.

    A check is left out when it cannot tell programs apart fairly: one that any program did not get to run
    (``?``, the deadline stopped it), and one on which most of the programs that ran at all fault (the model
    wrote an input outside the problem's constraints, or a call with the wrong arguments). A program that
    faults on every check (it does not compile, or crashes at once) has no say in which checks are valid. On
    the checks kept, each fault (``!...``) counts against its program. Programs with the same outputs form a
    cluster; ``agreement`` is the copies of every program in the cluster times one plus the self-written
    expectations the program meets. Programs that fault on every check form no cluster."""
    probed = [c for c in candidates if c.unique and c.outputs is not None]
    if not probed:
        return
    width = min(len(c.outputs or ()) for c in probed)
    outputs = {c.index: (c.outputs or ())[:width] for c in probed}
    voters = [o for o in outputs.values() if not all(x.startswith("!") for x in o)]
    invalid = {i for i in range(width)
               if any(o[i] == UNKNOWN for o in outputs.values())
               or 2 * sum(1 for o in voters if o[i].startswith("!")) > len(voters)}
    kept = {index: tuple(x for i, x in enumerate(o) if i not in invalid) for index, o in outputs.items()}
    clusters: dict[tuple[str, ...], int] = defaultdict(int)
    for c in probed:
        mine = kept[c.index]
        c.faults = sum(1 for x in mine if x.startswith("!"))
        if mine and c.faults < len(mine):
            clusters[mine] += c.copies
    for c in probed:
        size = clusters.get(kept[c.index], 0)
        c.agreement = size * (1 + (c.self_passed or 0)) if size else 0


# How far a failing program got, best first: it ran and answered wrongly, it crashed or ran out, it never ran.
# (The count of tests passed is no measure: the sandbox stops each candidate at its first failure, and tests
# run in parallel, so how many others finished first depends on timing.)
PROGRESS = {"passed": 0, "TestFailure": 1, "OutputLimit": 2, "RuntimeError": 2, "Timeout": 2, "MemoryLimit": 2,
            "untested": 3, "Skipped": 3, "CompileError": 4, "SyntaxError": 4}


def rank_key(c: Candidate, scores: bool = True) -> tuple[float, ...]:
    """Selection order over distinct programs: lower sorts first (``scores`` False: as if no scorer ran)."""
    score = c.score if scores else None
    return (
        PROGRESS.get(c.verdict, 3),
        c.faults,
        -(c.agreement or 0),
        score is None, score or 0.0,  # a scorer's "no opinion" ranks after every opinion
        c.tokens,
        c.index,
    )


def choose(candidates: list[Candidate], scores: bool = True) -> Candidate | None:
    pool = [c for c in candidates if c.unique]
    return min(pool, key=lambda c: rank_key(c, scores)) if pool else None
