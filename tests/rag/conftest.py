"""A real sandbox service and a scripted llama-server on real sockets, and an engine wired to both."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest

from atlas_core.settings import load_settings
from atlas_rag.engine import Engine, EngineConfig
from atlas_rag.llm import LLMClient
from atlas_rag.sandbox import SandboxClient
from atlas_sandbox.app import create_app as sandbox_app
from atlas_sandbox.settings import Settings as SandboxSettings
from tests.conftest import LLAMA_KEY, SANDBOX_SIGNING, RedisServer, ServerThread
from tests.rag.fake_llm import fake_llm
from tests.sandbox.conftest import sandbox_env

T = TypeVar("T")


@pytest.fixture(scope="session")
def sandbox_url(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = load_settings(SandboxSettings, environ=sandbox_env(redis_server, tmp_path_factory.mktemp("sbx")))
    with ServerThread(sandbox_app(settings)) as server:
        yield server.url


@pytest.fixture
def llm() -> Iterator[ServerThread]:
    with ServerThread(fake_llm(LLAMA_KEY)) as server:
        yield server


def run_engine(llm_url: str, sandbox: str, work: Callable[[Engine], Awaitable[T]], **config: Any) -> T:
    """Build an engine over real HTTP clients, run ``work`` with it, close everything."""

    async def main() -> T:
        async with httpx.AsyncClient() as http:
            engine = Engine(LLMClient(http, llm_url, LLAMA_KEY, parallel=config.pop("parallel", 4)),
                            SandboxClient(http, sandbox, SANDBOX_SIGNING), EngineConfig(**config))
            return await work(engine)

    return asyncio.run(main())
