"""The first stage: k candidate programs, requested together. The first is greedy; with ``plans`` in the budget,
the last ``plans`` candidates are each written from a different natural-language approach the model proposed
first (PlanSearch: k samples of one prompt tend to be k copies of one idea; distinct plans spread them)."""

from __future__ import annotations

import asyncio
import re

from atlas_core.budget import PLAN_TOKENS
from atlas_engine import prompts
from atlas_engine.calls import ModelCalls
from atlas_engine.llm import LLMUnavailable
from atlas_engine.select import Candidate
from atlas_engine.solve import Progress, Solve, TokenBudgetSpent, quiet, temperature

# "Approach 2: ...", "Plan 3." (labelled) and "2. ...", "2) ..." (numbered), matched on a line without markdown.
LABELLED = re.compile(r"^(?:approach|plan|idea|method|solution|strategy) ?(\d{1,2}) ?[.):-]? ?(.*)$", re.IGNORECASE)
NUMBERED = re.compile(r"^(\d{1,2}) ?[.)] ?(.*)$")
MAX_PLAN_CHARS = 1200
PLAN_SEED_OFFSET = 500  # the plans call's seed, apart from the candidates' (seed + index)


def parse_plans(text: str, count: int) -> list[str]:
    """The approaches in the model's answer, each with the lines under it; distinct, non-empty, at most ``count``.
    When the answer labels them ("Approach 1: ...") only labels start a plan, so numbered steps inside one
    stay in it; otherwise numbered lines ("1. ...") do."""
    lines = [" ".join(line.replace("**", "").replace("__", "").lstrip("#").split())
             for line in text.replace("\r\n", "\n").split("\n") if "```" not in line]
    start = LABELLED if any(LABELLED.match(line) for line in lines) else NUMBERED
    plans: list[list[str]] = []
    for line in lines:
        header = start.match(line)
        if header:
            plans.append([header.group(2)])
        elif plans and line:
            plans[-1].append(line)
    found: list[str] = []
    for parts in plans:
        plan = " ".join(x for x in parts if x)[:MAX_PLAN_CHARS].strip()
        if plan and plan not in found:
            found.append(plan)
    return found[:count]


def describe(c: Candidate) -> str:
    if c.code is None:
        return f"no code ({c.tokens} tokens)"
    if c.duplicate_of is not None:
        return f"same program as candidate {c.duplicate_of + 1} ({c.tokens} tokens)"
    return f"{len(c.code.splitlines())} lines ({c.tokens} tokens)"


class Generator:
    def __init__(self, calls: ModelCalls) -> None:
        self.calls = calls

    async def generate(self, solve: Solve, k: int, say: Progress = quiet) -> None:
        """Candidates ``len(sample candidates) .. k-1``; each is kept as it arrives, so a deadline keeps the
        finished ones. A failed request costs its candidate, not the solve, unless every request failed."""
        start = sum(1 for c in solve.candidates if c.origin == "sample")
        plans = min(solve.budget.plans, k - 1) if self.calls.prompt_style == "chat" else 0
        todo = list(range(start, k))
        planned = [i for i in todo if i >= k - plans]
        failures: list[LLMUnavailable] = []

        async def one(i: int, plan: tuple[int, str] | None = None) -> None:
            temp, seed = min(1.0, round(temperature(i) + solve.heat, 3)), solve.seed + i
            variant = prompts.VARIANTS[i % len(prompts.VARIANTS)]
            messages = prompts.solution(solve.problem, variant, solve.context, plan[1] if plan else None)
            try:
                code, gen = await self.calls.sample(solve, messages, temp, seed)
            except LLMUnavailable as exc:
                failures.append(exc)
                return
            except TokenBudgetSpent:
                return
            c = Candidate(index=i, origin="sample", temperature=temp, seed=seed, code=code,
                          tokens=gen.completion_tokens)
            if plan is not None:
                c.extra["plan"] = plan[0]
            solve.add(c)
            await say({"stage": "generate", "candidate": c.index, "tokens": c.tokens,
                       "message": f"candidate {c.index + 1}/{k}: " + describe(c)})

        async def from_plans() -> None:
            written = await self.write_plans(solve, len(planned), say)
            await asyncio.gather(*(one(i, (n, written[n]) if n < len(written) else None)
                                   for n, i in enumerate(planned)))

        await asyncio.gather(*(one(i) for i in todo if i not in planned), *([from_plans()] if planned else []))
        if failures and len(failures) == len(todo):
            raise failures[0]

    async def write_plans(self, solve: Solve, count: int, say: Progress = quiet) -> list[str]:
        """``count`` distinct approaches in plain words (fewer if the model gave fewer); none when the model or
        the token cap does not allow the call, and those candidates are written the usual way."""
        try:
            gen = await self.calls.chat(solve, prompts.plans(solve.problem, count), temperature=0.7,
                                        seed=solve.seed + PLAN_SEED_OFFSET,
                                        max_tokens=min(solve.budget.max_tokens, PLAN_TOKENS))
        except (LLMUnavailable, TokenBudgetSpent):
            return []
        solve.plans = parse_plans(gen.text, count)
        await say({"stage": "plans", "count": len(solve.plans),
                   "message": f"{len(solve.plans)} distinct approach(es) to write candidates from"})
        return solve.plans
