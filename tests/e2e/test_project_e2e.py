"""End to end, a developer's project through the real llm-proxy, portal and rag-api (an OpenAI-shaped model server
at the edge): sync with an ``sk-llm-`` key, a re-sync that sends nothing, a search, an agent turn of model
``atlas`` that names the project (the official ``openai`` client with ``X-Atlas-Project``) and gets the project's
code as a system message, and another user's key that cannot see, search, name or delete it (404)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import LLAMA_KEY, ServerThread
from tests.e2e.agents import rag_proxy
from tests.proxy import conftest as proxy_conftest
from tests.proxy.conftest import Stack
from tests.proxy.test_tasks import _user_key
from tests.rag.fake_openai import openai_fake, state

stack = proxy_conftest.stack  # the proxy tests' portal, proxy and Redis (module-scoped)
SLUGS = '''\
import re


def slugify_title(title):
    # ATLAS-E2E-MARKER: lowercase words joined by dashes
    return "-".join(re.findall(r"[a-z0-9]+", title.lower()))
'''
FILES = {"pkg/slugs.py": SLUGS, "pkg/__init__.py": ""}


@pytest.fixture(scope="module")
def model() -> Iterator[ServerThread]:
    with ServerThread(openai_fake(LLAMA_KEY)) as server:
        yield server


@pytest.fixture(scope="module")
def proxy(stack: Stack, model: ServerThread) -> Iterator[str]:
    """A proxy whose rag-api is a real one on that model server."""
    with rag_proxy(stack, model.url, ATLAS_PROJECT_SUMMARIES="false") as url:
        yield url


def call(proxy: str, key: str, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
    return httpx.request(method, f"{proxy}{path}", json=body, headers={"Authorization": f"Bearer {key}"},
                         timeout=60)


def test_a_synced_project_feeds_model_atlas_and_stays_its_owners(stack: Stack, proxy: str,
                                                                 model: ServerThread) -> None:
    key = stack.key()["key"]
    created = call(proxy, key, "POST", "/v1/projects", {"name": "slugs"})
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    manifest = {p: hashlib.sha256(c.encode()).hexdigest() for p, c in FILES.items()}
    assert call(proxy, key, "POST", f"/v1/projects/{pid}/diff", {"files": manifest}).json()["upload"] == sorted(FILES)
    written = call(proxy, key, "POST", f"/v1/projects/{pid}/files",
                   {"files": [{"path": p, "content": c} for p, c in FILES.items()]}).json()
    assert written["written"] == 2 and written["project"]["languages"] == {"python": 2}
    again = call(proxy, key, "POST", f"/v1/projects/{pid}/diff", {"files": manifest}).json()
    assert again == {"upload": [], "delete": [], "unchanged": 2}  # a re-sync sends nothing

    found = call(proxy, key, "POST", f"/v1/projects/{pid}/search", {"query": "slugify_title"}).json()
    assert (found["results"][0]["path"], found["results"][0]["start_line"], found["results"][0]["end_line"]) == (
        "pkg/slugs.py", 4, 6)

    with openai.OpenAI(base_url=f"{proxy}/v1", api_key=key, max_retries=0, timeout=60) as api:
        api.chat.completions.create(model="atlas", extra_headers={"X-Atlas-Project": pid},
                                    messages=[{"role": "user", "content": "How do I turn a title into a slug?"}],
                                    tools=[{"type": "function", "function": {"name": "read_file", "parameters": {
                                        "type": "object", "properties": {"path": {"type": "string"}}}}}])
    sent = state(model).requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user"]
    assert "# pkg/slugs.py:4-6" in sent[0]["content"] and "ATLAS-E2E-MARKER" in sent[0]["content"]

    other = _user_key(stack, f"other-{pid[-6:]}")
    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", f"/v1/projects/{pid}", None), ("DELETE", f"/v1/projects/{pid}", None),
        ("POST", f"/v1/projects/{pid}/search", {"query": "slug"}), ("POST", f"/v1/projects/{pid}/files", {"files": []})]
    for method, path, body in calls:
        refused = call(proxy, other, method, path, body)
        assert refused.status_code == 404, (method, path, refused.text)
    assert call(proxy, other, "GET", "/v1/projects").json()["data"] == []
    with openai.OpenAI(base_url=f"{proxy}/v1", api_key=other, max_retries=0, timeout=60) as api, \
            pytest.raises(openai.NotFoundError):
        api.chat.completions.create(model="atlas", extra_headers={"X-Atlas-Project": pid},
                                    messages=[{"role": "user", "content": "How do I turn a title into a slug?"}])

    assert call(proxy, key, "DELETE", f"/v1/projects/{pid}").json()["deleted"] is True
    assert call(proxy, key, "GET", f"/v1/projects/{pid}").status_code == 404
