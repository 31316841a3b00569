"""The state of one solve, readable at any point (the deadline may stop it mid-stage), and its spending: tokens
under the cap the caller reserved, wall time under the deadline."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from atlas_engine.extract import normalise
from atlas_engine.llm import Generation
from atlas_engine.problem import Problem
from atlas_engine.select import Candidate
from atlas_engine.timeline import Timeline

if TYPE_CHECKING:
    from atlas_engine.contracts import Budget, ProjectRef
    from atlas_engine.routes import RouteDecision

Progress = Callable[[dict[str, Any]], Awaitable[None]]
MIN_CALL_TOKENS = 16  # a model call with less room than this is not worth making
CHARS_PER_TOKEN = 3  # a cautious estimate of a prompt's tokens before the server counts them (code: 3-4)
MESSAGE_OVERHEAD = 8  # the chat template's tokens around each message
CARRIED_BASE = 1000  # indices of programs carried over from an earlier attempt (after any new sample)


async def quiet(event: dict[str, Any]) -> None:
    return None


def temperature(index: int) -> float:
    """PLATFORM.md §5 as a schedule over candidates: the first is greedy (it is what k=1 gives), the next four
    sample at 0.6 (k <= 5), further ones at 0.8 (k > 5). It depends on the index alone, so with one
    generation at a time the first k candidates of a larger run are exactly a run with budget k."""
    if index == 0:
        return 0.0
    return 0.6 if index < 5 else 0.8


def problem_seed(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF


@dataclass(frozen=True)
class SolveBudget:
    """A request's budget with the service's defaults filled in."""

    k: int
    max_tokens: int
    repair_rounds: int
    deadline_s: float
    self_tests: bool
    plans: int = 0  # of the k candidates, how many are written from a plan of their own (PlanSearch)
    lens: bool = True  # the scorer (the Lens) orders ties, when one is installed
    stop_on_first_pass: bool = False  # judge one at a time, best energy first, and stop at the first pass
    learn: bool = True  # the router and the pattern cache may learn from this solve's verified outcome
    patterns: bool = True  # the owner's verified patterns may be retrieved for this solve


@dataclass
class SelfTest:
    """A check the model wrote: a call of the entry point and the value it expects (functions), or an input to
    feed a program on stdin (``expected`` None: programs are only compared with each other on it)."""

    call: str
    expected: str | None
    input: str | None = None


class TokenBudgetSpent(Exception):
    """The solve may not spend another call's tokens: it ends with what it has (``stopped`` = budget)."""


@dataclass(frozen=True)
class Retrieved:
    """What a ContextSource found: the text the prompts carry, what it cites, and how sure it is (the router's
    retrieval confidence, PLATFORM.md §5: 0.4·min(1, chunks/5) + 0.6·min(1, top_score/5))."""

    text: str
    chunks: int
    top_score: float  # the best hit's BM25 score
    citations: list[dict[str, Any]]  # {"path", "start_line", "end_line", "name"} per chunk the text holds

    def confidence(self) -> float:
        return round(0.4 * min(1.0, self.chunks / 5) + 0.6 * min(1.0, self.top_score / 5), 4)


@dataclass
class Solve:
    id: str
    problem: Problem
    budget: SolveBudget
    seed: int
    timeline: Timeline = field(default_factory=Timeline)
    deadline: float = float("inf")  # time.monotonic() when the budget's wall clock runs out
    candidates: list[Candidate] = field(default_factory=list)
    self_tests: list[SelfTest] = field(default_factory=list)
    context: str | None = None  # retrieved material the generation prompts carry (a ContextSource's)
    plans: list[str] = field(default_factory=list)  # the approaches the plan-first candidates were written from
    prompt_tokens: int = 0
    completion_tokens: int = 0
    repair_rounds: int = 0
    heat: float = 0.0  # added to every sample's temperature (the task-worker raises it over attempts)
    stopped: Literal["done", "deadline", "budget"] = "done"
    token_cap: int | None = None  # the most tokens this solve may spend (what the proxy or the worker reserved)
    committed: int = 0  # tokens spent plus the most that the calls in flight may still spend
    difficulty: float | None = None  # the estimator's G(x) for the problem (None: no estimate)
    owner: str | None = None  # the user the solve runs for (patterns are theirs); None: nobody's
    asked: Budget | None = None  # the budget as the request gave it: fields it names hold on every route
    decision: RouteDecision | None = None  # the router's choice, and what each of its steps spent
    project: ProjectRef | None = None  # the caller's project the solve retrieves from
    retrieved: Retrieved | None = None  # what a ContextSource found for it

    def verified(self) -> bool:
        return any(c.public_ok for c in self.unique())

    def add(self, candidate: Candidate) -> Candidate:
        if candidate.code is not None:
            candidate.key = normalise(candidate.code, self.problem.language)
        self.candidates.append(candidate)
        self.settle()
        return candidate

    def settle(self) -> None:
        """Candidates in index order, the lowest index of each program its original (the others count as its
        copies): parallel generations finish in any order, and the answer must not depend on which came first.
        Judging happens after a whole round is in, so an original never changes once judged."""
        self.candidates.sort(key=lambda c: c.index)
        first: dict[str, Candidate] = {}
        for c in self.candidates:
            c.duplicate_of, c.copies = None, 1
            if c.code is None:
                continue
            if c.key in first:
                c.duplicate_of = first[c.key].index
                first[c.key].copies += c.origin == "sample"  # votes are independent samples, not repairs
            else:
                first[c.key] = c

    def unique(self) -> list[Candidate]:
        return [c for c in self.candidates if c.unique]

    def remaining(self) -> float:
        return max(0.5, self.deadline - time.monotonic())

    def count(self, generation: Generation) -> None:
        self.prompt_tokens += generation.prompt_tokens
        self.completion_tokens += generation.completion_tokens

    def allow(self, prompt_chars: int, wanted: int) -> tuple[int, int]:
        """Room for one model call under the token cap: ``(max_tokens to ask for, tokens set aside)``, counting the
        calls already in flight. Raises TokenBudgetSpent when not even a short answer fits."""
        if self.token_cap is None:
            return wanted, 0
        prompt = prompt_chars // CHARS_PER_TOKEN + 1
        room = self.token_cap - self.committed - prompt
        if room < MIN_CALL_TOKENS:
            self.stopped = "budget"
            raise TokenBudgetSpent(f"the solve's token cap of {self.token_cap} is spent")
        allowed = min(wanted, room)
        self.committed += prompt + allowed
        return allowed, prompt + allowed

    def spent(self, set_aside: int, generation: Generation | None) -> None:
        """A call ended: what it set aside gives way to what it really spent."""
        if self.token_cap is not None:
            used = generation.prompt_tokens + generation.completion_tokens if generation else 0
            self.committed += used - set_aside
