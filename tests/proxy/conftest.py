"""The proxy in front of fake backends, with the real portal and Redis, all as real servers on loopback."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from atlas_core.settings import load_settings
from atlas_portal.app import create_app as create_portal
from atlas_portal.settings import Settings as PortalSettings
from atlas_proxy.app import create_app as create_proxy
from atlas_proxy.settings import Settings as ProxySettings
from atlas_rag.app import create_app as rag_app
from atlas_rag.settings import Settings as RagSettings
from tests.conftest import (
    LLAMA_KEY,
    METRICS_TOKEN,
    PROXY_TOKEN,
    RECOVERY_TOKEN,
    SANDBOX_SIGNING,
    RedisServer,
    ServerThread,
    free_port,
)
from tests.proxy.fake_upstream import fake_upstream

# What the fake rag-api reports spending on a streamed atlas chat (a best-of-5 solve seen in a review)
RAG_STREAM_USAGE = {"prompt_tokens": 693, "completion_tokens": 188, "total_tokens": 881}


@dataclass
class Stack:
    env: dict[str, str]
    proxy: str
    portal: str
    admin: dict[str, str]
    llama: FastAPI
    embed: FastAPI
    rag: FastAPI

    def key(self, **limits: Any) -> dict[str, Any]:
        body = {"name": f"test-{secrets.token_hex(3)}", "rate_limit": 0, "tokens_per_min": 0, "max_concurrent": 0}
        response = httpx.post(f"{self.portal}/api/keys", headers=self.admin, json=body | limits)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def proxy_app(self, **overrides: str) -> FastAPI:
        """Another proxy on the same backends, with some settings changed."""
        return create_proxy(load_settings(ProxySettings, environ=self.env | overrides))


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with redis_server.client() as client:
        client.flushdb()
    llama = fake_upstream(["fake-chat"], LLAMA_KEY)
    embed = fake_upstream(["fake-embed"], LLAMA_KEY)
    rag = fake_upstream([], PROXY_TOKEN, stream_usage=RAG_STREAM_USAGE)
    with ServerThread(llama) as llama_server, ServerThread(embed) as embed_server, ServerThread(rag) as rag_server:
        portal_port, proxy_port = free_port(), free_port()
        env = {
            "ATLAS_METRICS_TOKEN": METRICS_TOKEN, "ATLAS_PROXY_TOKEN": PROXY_TOKEN,
            "ATLAS_RECOVERY_TOKEN": RECOVERY_TOKEN, "ATLAS_LLAMA_API_KEY": LLAMA_KEY,
            "ATLAS_JWT_SECRET": secrets.token_urlsafe(32), "ATLAS_KEY_HASH_SECRET": secrets.token_urlsafe(32),
            "ATLAS_REDIS_URL": redis_server.url, "ATLAS_REDIS_PASSWORD": redis_server.password,
            "ATLAS_STATE_DIR": str(tmp_path_factory.mktemp("proxy-state")),
            "ATLAS_LLAMA_URL": llama_server.url, "ATLAS_EMBED_URL": embed_server.url, "ATLAS_RAG_URL": rag_server.url,
            "ATLAS_PORTAL_URL": f"http://127.0.0.1:{portal_port}",
            # Per-user limits off by default here: each test sets the ones it is about (a new user's, via PATCH).
            "ATLAS_USER_DEFAULT_RPM": "0", "ATLAS_USER_DEFAULT_TPM": "0", "ATLAS_USER_DEFAULT_CONCURRENCY": "0",
            "ATLAS_USER_DEFAULT_STREAMS": "0", "ATLAS_USER_DEFAULT_TASKS": "0", "ATLAS_MAX_KEYS_PER_USER": "10000",
            "ATLAS_PUBLIC_API_URL": f"http://127.0.0.1:{proxy_port}/v1",
        }
        portal_app = create_portal(load_settings(PortalSettings, environ=env))
        proxy_app = create_proxy(load_settings(ProxySettings, environ=env))
        with ServerThread(portal_app, portal_port) as portal, ServerThread(proxy_app, proxy_port) as proxy:
            boot = httpx.post(f"{portal.url}/internal/bootstrap", headers={"Authorization": f"Bearer {RECOVERY_TOKEN}"})
            login = httpx.post(f"{portal.url}/api/auth/login",
                               json={"username": "admin", "password": boot.json()["password"]})
            admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
            # The portal lists backend models in the background: wait until it has seen them.
            deadline = time.monotonic() + 30
            while len(httpx.get(f"{portal.url}/api/models", headers=admin).json()) < 3:
                assert time.monotonic() < deadline, "the portal never listed the fake models"
                time.sleep(0.1)
            yield Stack(env=env, proxy=proxy.url, portal=portal.url, admin=admin, llama=llama, embed=embed, rag=rag)


@pytest.fixture(scope="module")
def rag_url(stack: Stack, sandbox_url: str) -> Iterator[str]:
    """The real rag-api, on the fake model server and the real sandbox (tasks need neither until a worker runs
    them; atlas chats and solves run through both)."""
    env = stack.env | {"ATLAS_SANDBOX_SIGNING_KEY": SANDBOX_SIGNING, "ATLAS_SANDBOX_URL": sandbox_url,
                       "ATLAS_RAG_DEADLINE_S": "10"}
    with ServerThread(rag_app(load_settings(RagSettings, environ=env))) as rag:
        yield rag.url


@pytest.fixture(scope="module")
def rag_proxy(stack: Stack, rag_url: str) -> Iterator[str]:
    """A proxy whose rag-api is the real one."""
    with ServerThread(stack.proxy_app(ATLAS_RAG_URL=rag_url)) as server:
        yield server.url
