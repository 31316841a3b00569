"""An engine wired to the real sandbox and the scripted llama-server (fixtures ``sandbox_url`` and ``llm`` in
tests/conftest.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

from atlas_engine import Engine, EngineConfig, LLMClient, SandboxClient
from tests.conftest import LLAMA_KEY, SANDBOX_SIGNING

T = TypeVar("T")


def run_engine(llm_url: str, sandbox: str, work: Callable[[Engine], Awaitable[T]], **config: Any) -> T:
    """Build an engine over real HTTP clients, run ``work`` with it, close everything."""

    async def main() -> T:
        async with httpx.AsyncClient() as http:
            engine = Engine(LLMClient(http, llm_url, LLAMA_KEY, parallel=config.pop("parallel", 4)),
                            SandboxClient(http, sandbox, SANDBOX_SIGNING), EngineConfig(**config))
            return await work(engine)

    return asyncio.run(main())
