"""The router inside rag-api (real Redis, the real sandbox, the real embedding server): every solve that names no
k is routed and says how, a verified answer becomes its user's pattern and comes back to that user alone, and
the router's metrics move."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from atlas_core.settings import load_settings
from atlas_rag.app import create_app
from atlas_rag.settings import Settings
from atlas_router import BINS
from tests.conftest import METRICS_TOKEN, RedisServer, ServerThread
from tests.rag.fake_llm import fake, fenced
from tests.rag.test_lens import ADD, auth, embed_url

__all__ = ["embed_url"]  # the module's embedding server fixture


@pytest.fixture
def rag(service_env: dict[str, str], llm: ServerThread, sandbox_url: str, embed_url: str, tmp_path: Path,
        redis_server: RedisServer) -> Iterator[httpx.Client]:
    with redis_server.client() as r:
        stale = [*r.scan_iter("atlas:router:*"), *r.scan_iter("atlas:pat:*")]
        if stale:
            r.delete(*stale)
        for b in BINS:  # a cache answer that passed before, everywhere: a near-identical problem takes it
            r.hset(f"atlas:router:arm:{b}:cache", mapping={"a": 30, "n": 30})
    env = service_env | {"ATLAS_LLAMA_URL": llm.url, "ATLAS_SANDBOX_URL": sandbox_url, "ATLAS_EMBED_URL": embed_url,
                         "ATLAS_STATE_DIR": str(tmp_path), "ATLAS_ROUTER_EXPLORE": "0"}
    with ServerThread(create_app(load_settings(Settings, environ=env))) as server, \
            httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


def test_routed_solves_keep_each_users_patterns_to_themselves(rag: httpx.Client, llm: ServerThread,
                                                              redis_server: RedisServer) -> None:
    fake(llm).script = lambda body: fenced("def add(a, b):\n    return a + b")
    first = rag.post("/v1/solve", json={"problem": ADD}, headers=auth("41")).json()
    assert first["verified"] and first["route"]["route"] in ("fast", "standard", "deep")
    assert first["route"]["steps"][0]["tokens"] > 0 and first["route"]["patterns"] == []
    with redis_server.client() as r:
        assert r.hlen("atlas:pat:41:vec") == 1 and not r.exists("atlas:pat:42:vec")
    calls = len(fake(llm).requests)
    again = rag.post("/v1/solve", json={"problem": ADD}, headers=auth("41")).json()
    assert again["route"]["cache_hit"] and again["route"]["route"] == "cache" and again["verified"]
    assert len(fake(llm).requests) == calls and again["usage"]["total_tokens"] == 0  # no model call at all
    other = rag.post("/v1/solve", json={"problem": ADD}, headers=auth("42")).json()
    assert other["route"]["patterns"] == [] and not other["route"]["cache_hit"]
    fixed = rag.post("/v1/solve", json={"problem": ADD, "budget": {"k": 2, "patterns": False}},
                     headers=auth("41")).json()
    assert fixed["route"]["route"] == "requested" and fixed["route"]["patterns"] == []
    metrics = rag.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text
    assert 'atlas_pattern_answers_total 1.0' in metrics and 'atlas_pattern_writes_total 2.0' in metrics
    assert 'atlas_router_decisions_total{bin=' in metrics and 'route="cache"' in metrics
