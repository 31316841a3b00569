"""The project API through the proxy: every call relayed to rag-api with the key's owner (a client cannot claim
another), answers (201 and 404 included) coming back as rag-api gave them, refused without a key or without model
`atlas`, and counted like any request. rag-api is a fake here that records what reaches it: what rag-api does with
a project is tests/rag's business; this file is about the boundary."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.conftest import PROXY_TOKEN, ServerThread
from tests.metrics import samples, value
from tests.proxy.conftest import Stack

MINE = "p_" + "0" * 24
THEIRS = "p_" + "f" * 24  # another user's: rag-api answers 404, as for one that does not exist
PROJECT = {"id": MINE, "object": "project", "name": "demo", "created": 1, "files": 0, "bytes": 0, "lines": 0,
           "version": 0, "languages": {}}


def fake_rag() -> FastAPI:
    """Answers the project API like rag-api, recording each call's method, path, query, headers and body."""
    app = FastAPI()
    app.state.seen = []

    @app.api_route("/v1/projects{rest:path}", methods=["GET", "POST", "DELETE"])
    async def projects(request: Request, rest: str) -> JSONResponse:
        body = await request.body()
        app.state.seen.append({"method": request.method, "path": request.url.path, "query": request.url.query,
                               "headers": dict(request.headers), "body": json.loads(body) if body else None})
        if request.headers.get("authorization") != f"Bearer {PROXY_TOKEN}":
            return JSONResponse({"error": {"message": "not the proxy", "type": "authentication_error"}}, 401)
        if THEIRS in rest:
            return JSONResponse({"error": {"message": f"the project '{THEIRS}' does not exist", "param": None,
                                           "type": "invalid_request_error", "code": "project_not_found"}}, 404)
        answers: dict[tuple[str, str], tuple[int, Any]] = {
            ("POST", ""): (201, PROJECT), ("GET", ""): (200, {"object": "list", "data": [PROJECT]}),
            ("GET", f"/{MINE}"): (200, PROJECT), ("DELETE", f"/{MINE}"): (200, {"id": MINE, "deleted": True}),
            ("POST", f"/{MINE}/diff"): (200, {"upload": ["a.py"], "delete": [], "unchanged": 0}),
            ("POST", f"/{MINE}/files"): (200, {"written": 1, "unchanged": 0, "deleted": 0, "skipped": [],
                                              "reindexed": ["a.py"], "project": PROJECT}),
            ("POST", f"/{MINE}/search"): (200, {"mode": "bm25", "results": []}),
        }
        status, answer = answers[(request.method, rest)]
        return JSONResponse(answer, status)

    return app


@pytest.fixture(scope="module")
def rag() -> Iterator[tuple[FastAPI, str]]:
    app = fake_rag()
    with ServerThread(app) as server:
        yield app, server.url


@pytest.fixture(scope="module")
def proxy(stack: Stack, rag: tuple[FastAPI, str]) -> Iterator[str]:
    with ServerThread(stack.proxy_app(ATLAS_RAG_URL=rag[1])) as server:
        yield server.url


@pytest.fixture
def seen(rag: tuple[FastAPI, str]) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = rag[0].state.seen
    calls.clear()
    return calls


def call(proxy: str, key: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, f"{proxy}{path}", headers={"Authorization": f"Bearer {key}"} | kwargs.pop(
        "headers", {}), timeout=30, **kwargs)


def test_every_project_call_reaches_rag_api_as_the_keys_owner(stack: Stack, proxy: str,
                                                                seen: list[dict[str, Any]]) -> None:
    key = stack.key()
    claimed = {"X-Atlas-User-Id": "999", "X-Atlas-Key-Id": "999"}  # a client's claim is never relayed
    created = call(proxy, key["key"], "POST", "/v1/projects", json={"name": "demo"}, headers=claimed)
    assert created.status_code == 201 and created.json() == PROJECT
    assert call(proxy, key["key"], "GET", "/v1/projects?limit=5").json()["data"] == [PROJECT]
    assert call(proxy, key["key"], "GET", f"/v1/projects/{MINE}").json() == PROJECT
    diff = call(proxy, key["key"], "POST", f"/v1/projects/{MINE}/diff", json={"files": {"a.py": "0" * 64}})
    assert diff.json()["upload"] == ["a.py"]
    files = {"files": [{"path": "a.py", "content": "def f():\n    return 'é'\n"}], "delete": ["b.py"]}
    assert call(proxy, key["key"], "POST", f"/v1/projects/{MINE}/files", json=files).json()["written"] == 1
    search = {"query": "where is f", "k": 3, "mode": "bm25"}
    assert call(proxy, key["key"], "POST", f"/v1/projects/{MINE}/search", json=search).json()["mode"] == "bm25"
    assert call(proxy, key["key"], "DELETE", f"/v1/projects/{MINE}").json() == {"id": MINE, "deleted": True}

    assert [(c["method"], c["path"]) for c in seen] == [
        ("POST", "/v1/projects"), ("GET", "/v1/projects"), ("GET", f"/v1/projects/{MINE}"),
        ("POST", f"/v1/projects/{MINE}/diff"), ("POST", f"/v1/projects/{MINE}/files"),
        ("POST", f"/v1/projects/{MINE}/search"), ("DELETE", f"/v1/projects/{MINE}")]
    assert seen[1]["query"] == "limit=5"
    assert [c["body"] for c in seen if c["body"] is not None] == [{"name": "demo"}, {"files": {"a.py": "0" * 64}},
                                                                   files, search]
    for relayed in seen:
        headers = relayed["headers"]
        assert headers["authorization"] == f"Bearer {PROXY_TOKEN}"  # the proxy's credential, never the key
        assert headers["x-atlas-user-id"] == str(key["user_id"]) and headers["x-atlas-key-id"] == str(key["id"])
        assert "x-atlas-limits" in headers and headers["x-request-id"]


def test_another_users_project_is_404_as_rag_api_says(stack: Stack, proxy: str, seen: list[dict[str, Any]]) -> None:
    key = stack.key()["key"]
    for method, path in (("GET", ""), ("DELETE", ""), ("POST", "/search")):
        answer = call(proxy, key, method, f"/v1/projects/{THEIRS}{path}", json={"query": "x"})
        assert answer.status_code == 404, answer.text
        assert answer.json()["error"]["code"] == "project_not_found"


def test_an_id_that_could_climb_out_of_the_project_api_never_leaves_the_proxy(
        stack: Stack, proxy: str, seen: list[dict[str, Any]]) -> None:
    key = stack.key()["key"]
    for path in ("/v1/projects/%2E%2E/search", "/v1/projects/%2E%2E", "/v1/projects/a.b/diff"):
        answer = call(proxy, key, "POST" if path.count("/") > 3 else "GET", path, json={"query": "x"})
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "project_not_found", path
    assert seen == []


def test_no_key_a_bad_key_or_a_key_without_model_atlas_is_refused(stack: Stack, proxy: str,
                                                                   seen: list[dict[str, Any]]) -> None:
    assert httpx.get(f"{proxy}/v1/projects", timeout=30).status_code == 401
    assert call(proxy, "sk-llm-nope", "POST", "/v1/projects", json={"name": "x"}).status_code == 401
    restricted = stack.key(allowed_models=["fake-chat"])["key"]
    refused = call(proxy, restricted, "POST", "/v1/projects", json={"name": "x"})
    assert refused.status_code == 403 and "atlas" in refused.json()["error"]["message"]
    allowed = stack.key(allowed_models=["atlas"])["key"]
    assert call(proxy, allowed, "GET", "/v1/projects").status_code == 200
    assert len(seen) == 1  # only the allowed call reached rag-api


def test_project_calls_count_as_requests_and_are_metered_as_projects(stack: Stack, proxy: str,
                                                                     seen: list[dict[str, Any]]) -> None:
    key = stack.key(rate_limit=2)["key"]
    before = samples(proxy)
    codes = [call(proxy, key, "GET", "/v1/projects").status_code for _ in range(3)]
    after = samples(proxy)
    assert codes == [200, 200, 429]
    assert len(seen) == 2

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("atlas_proxy_requests_total", model="atlas", route="projects", code="2xx") == 2
    assert moved("atlas_proxy_rejections_total", reason="rpm", scope="key") == 1
    assert moved("atlas_proxy_tokens_total", model="atlas", kind="prompt") == 0  # a project call spends no tokens


def test_the_proxys_body_limit_applies_to_uploads(stack: Stack, rag: tuple[FastAPI, str],
                                                  seen: list[dict[str, Any]]) -> None:
    key = stack.key()["key"]
    with ServerThread(stack.proxy_app(ATLAS_RAG_URL=rag[1], ATLAS_PROXY_MAX_BODY_BYTES="4096")) as small:
        files = {"files": [{"path": "big.py", "content": "x = 1\n" * 1000}]}
        answer = call(small.url, key, "POST", f"/v1/projects/{MINE}/files", json=files)
        assert answer.status_code == 413, answer.text
        fits = {"files": [{"path": "a.py", "content": "x = 1\n"}]}
        assert call(small.url, key, "POST", f"/v1/projects/{MINE}/files", json=fits).status_code == 200
    assert len(seen) == 1
