"""The stack the agent-client end-to-end tests share: the proxy tests' portal, proxy and Redis, a real rag-api on
an OpenAI-shaped model server at the edge (tests/rag's fake), and a proxy in front of it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from atlas_core.settings import load_settings
from atlas_rag.app import create_app as rag_app
from atlas_rag.settings import Settings as RagSettings
from tests.conftest import SANDBOX_SIGNING, ServerThread
from tests.proxy.conftest import Stack


@contextmanager
def rag_proxy(stack: Stack, model_url: str, **env: str) -> Iterator[str]:
    """The URL of a proxy whose rag-api is a real one on ``model_url`` (``env``: more of rag-api's settings)."""
    settings = stack.env | {"ATLAS_LLAMA_URL": model_url, "ATLAS_SANDBOX_SIGNING_KEY": SANDBOX_SIGNING} | env
    with ServerThread(rag_app(load_settings(RagSettings, environ=settings))) as rag, \
            ServerThread(stack.proxy_app(ATLAS_RAG_URL=rag.url)) as server:
        yield server.url
