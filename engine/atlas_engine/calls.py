"""The engine's model calls, each within the solve's token cap and counted against it: a chat call, and a
candidate program sampled (chat or completion prompt) with its code extracted and cleaned."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal

from atlas_engine import prompts
from atlas_engine.extract import COMPLETION_STOPS, add_imports, complete_code, extract_code, sanitize_python
from atlas_engine.llm import Generation, LLMClient, Message
from atlas_engine.solve import CHARS_PER_TOKEN, MESSAGE_OVERHEAD, Solve

PromptStyle = Literal["chat", "completion"]


class ModelCalls:
    def __init__(self, llm: LLMClient, prompt_style: PromptStyle) -> None:
        self.llm = llm
        self.prompt_style = prompt_style

    @staticmethod
    async def capped(solve: Solve, prompt_chars: int, wanted: int,
                     call: Callable[[int], Awaitable[Generation]]) -> Generation:
        """One model call, ``call(max_tokens)``, within the solve's token cap; its tokens are counted."""
        limit, aside = solve.allow(prompt_chars, wanted)
        try:
            gen = await call(limit)
        except BaseException:
            solve.spent(aside, None)
            raise
        solve.spent(aside, gen)
        solve.count(gen)
        return gen

    async def chat(self, solve: Solve, messages: list[Message], *, temperature: float, seed: int | None,
                   max_tokens: int) -> Generation:
        chars = sum(len(m.get("content", "")) + MESSAGE_OVERHEAD * CHARS_PER_TOKEN for m in messages)
        return await self.capped(solve, chars, max_tokens, lambda limit: self.llm.chat(
            messages, temperature=temperature, seed=seed, max_tokens=limit, timeline=solve.timeline))

    async def sample(self, solve: Solve, messages: list[Message], temp: float, seed: int | None
                     ) -> tuple[str | None, Generation]:
        """One candidate program: ``messages`` for a chat model, the problem as a file to continue for a base
        model (``prompt_style`` completion). Python answers lose what would run on import (asserts, example
        calls) and get the problem's imports back."""
        problem = solve.problem
        code: str | None
        if self.prompt_style == "completion":
            prefix = prompts.completion_prefix(problem)
            gen = await self.capped(solve, len(prefix), solve.budget.max_tokens, lambda limit: self.llm.complete(
                prefix, temperature=temp, seed=seed, max_tokens=limit, stop=COMPLETION_STOPS, timeline=solve.timeline))
            code = complete_code(prefix, gen.text)
        else:
            gen = await self.chat(solve, messages, temperature=temp, seed=seed, max_tokens=solve.budget.max_tokens)
            code = extract_code(gen.text, problem.language, problem.entry_point)
        if code is not None and problem.language == "python":
            code = add_imports(sanitize_python(code, problem.reads_stdin, problem.entry_point), problem.text)
        return code, gen
