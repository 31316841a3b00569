"""rag-api's project API over HTTP (a real uvicorn on loopback, the real test Redis): create, list, show, sync
(diff then files), search and delete; a project is its owner's alone (anyone else gets 404, never 403, and an
empty list); the proxy's credential and the user header are required; a hostile path or a bad body is a 400 that
names the field and writes nothing; a Redis that is down is a 503. And a solve that names a project carries the
project's code into the model's prompts and cites it, while another user's solve naming it is refused before
any model call. The model (tests/rag/fake_llm.py) is the only fake; the judge is the real sandbox."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from atlas_core.settings import load_settings
from atlas_pageindex.store import sha256
from atlas_rag.app import create_app
from atlas_rag.settings import Settings
from tests.conftest import PROXY_TOKEN, RedisServer, ServerThread, free_port
from tests.rag.fake_llm import fake, fenced, user_text

OWNER, OTHER = "7", "8"
SLUGS = '''\
"""Slugs for page titles."""


def slugify_title(title):
    """Turn a page title into the slug its URL ends with."""
    kept = [c if c.isalnum() else "-" for c in title.lower()]
    return "-".join(part for part in "".join(kept).split("-") if part)  # zz-slug-marker
'''
SLUG_LINES = (4, 7)
ADD_GO = "package calc\n\n// Add sums two integers.\nfunc Add(a int, b int) int {\n\treturn a + b\n}\n"
FILES = {"pkg/slugs.py": SLUGS, "calc/add.go": ADD_GO, "README.md": "# Site\n\nPages with slugs.\n"}
PROBLEM = ("Write a Python function shout_slug(title) that slugifies a page title like slugify_title does, "
           "then returns it in upper case.\n>>> shout_slug('Hello, World')\n'HELLO-WORLD'\n")
ANSWER = fenced('def shout_slug(title):\n    kept = [c if c.isalnum() else "-" for c in title.lower()]\n'
                '    return "-".join(p for p in "".join(kept).split("-") if p).upper()')


def auth(user: str | None = OWNER) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {PROXY_TOKEN}"}
    return headers | ({"X-Atlas-User-Id": user} if user is not None else {})


@pytest.fixture
def rag(service_env: dict[str, str], llm: ServerThread, sandbox_url: str) -> Iterator[httpx.Client]:
    # Summaries off: the background would ask the model after each sync, and these tests count its calls.
    env = service_env | {"ATLAS_LLAMA_URL": llm.url, "ATLAS_SANDBOX_URL": sandbox_url,
                         "ATLAS_PROJECT_SUMMARIES": "false", "ATLAS_PROJECT_MAX_FILE_BYTES": "4096"}
    with ServerThread(create_app(load_settings(Settings, environ=env))) as server, \
            httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


def create(client: httpx.Client, user: str = OWNER, name: str = "site") -> str:
    response = client.post("/v1/projects", json={"name": name}, headers=auth(user))
    assert response.status_code == 201, response.text
    pid: str = response.json()["id"]
    return pid


def sync(client: httpx.Client, pid: str, files: dict[str, str], user: str = OWNER) -> dict[str, Any]:
    """What ``atlas project sync`` does: ask what to send, then send it."""
    plan = client.post(f"/v1/projects/{pid}/diff", json={"files": {p: sha256(c) for p, c in files.items()}},
                       headers=auth(user))
    assert plan.status_code == 200, plan.text
    wanted = plan.json()
    response = client.post(f"/v1/projects/{pid}/files", headers=auth(user), json={
        "files": [{"path": p, "content": files[p]} for p in wanted["upload"]], "delete": wanted["delete"]})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def error(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    return body


def project_keys(redis_server: RedisServer, pid: str) -> dict[bytes, Any]:
    with redis_server.client() as r:
        return {k: r.hgetall(k) if r.type(k) == b"hash" else r.get(k) for k in r.scan_iter(f"atlas:proj:{pid}*")}


def test_create_list_show_sync_search_delete(rag: httpx.Client, redis_server: RedisServer) -> None:
    created = rag.post("/v1/projects", json={"name": "site"}, headers=auth())
    assert created.status_code == 201
    project = created.json()
    pid = project["id"]
    assert (project["object"], project["name"], project["version"], project["files"]) == ("project", "site", 0, 0)
    assert rag.get("/v1/projects", headers=auth()).json() == {"object": "list", "data": [project]}
    assert rag.get(f"/v1/projects/{pid}", headers=auth()).json() == project

    first = sync(rag, pid, FILES)
    assert (first["written"], first["unchanged"], first["deleted"], first["skipped"]) == (3, 0, 0, [])
    assert first["reindexed"] == sorted(FILES)
    assert (first["project"]["version"], first["project"]["files"]) == (1, 3)
    assert first["project"]["languages"] == {"go": 1, "python": 1}
    assert first["project"]["bytes"] == sum(len(c.encode()) for c in FILES.values())

    # a second sync of the same tree sends nothing; a changed file and a removed one are all it sends
    plan = rag.post(f"/v1/projects/{pid}/diff", json={"files": {p: sha256(c) for p, c in FILES.items()}},
                    headers=auth()).json()
    assert plan == {"upload": [], "delete": [], "unchanged": 3}
    changed = {"pkg/slugs.py": SLUGS + "\n\ndef unslug(slug):\n    return slug.replace('-', ' ')\n",
               "calc/add.go": ADD_GO}
    second = sync(rag, pid, changed)
    assert (second["reindexed"], second["unchanged"], second["deleted"]) == (["pkg/slugs.py"], 0, 1)
    assert (second["project"]["version"], second["project"]["files"]) == (2, 2)

    found = rag.post(f"/v1/projects/{pid}/search", json={"query": "slugify_title", "k": 3}, headers=auth())
    assert found.status_code == 200, found.text
    body = found.json()
    assert (body["object"], body["mode"], body["note"]) == ("search", "bm25", None)
    top = body["results"][0]
    assert (top["path"], top["start_line"], top["end_line"], top["name"], top["kind"]) == (
        "pkg/slugs.py", *SLUG_LINES, "slugify_title", "function")
    # prose goes to hybrid, which has no embeddings here (the embedding server is down): BM25, saying so
    prose = rag.post(f"/v1/projects/{pid}/search", json={"query": "sum two integers"}, headers=auth()).json()
    assert prose["mode"] == "bm25" and prose["note"] and prose["results"][0]["path"] == "calc/add.go"

    deleted = rag.delete(f"/v1/projects/{pid}", headers=auth())
    assert deleted.status_code == 200 and deleted.json() == {"id": pid, "object": "project", "deleted": True}
    assert rag.get(f"/v1/projects/{pid}", headers=auth()).status_code == 404
    assert rag.get("/v1/projects", headers=auth()).json()["data"] == []
    assert project_keys(redis_server, pid) == {}


def test_another_user_gets_404_and_an_empty_list(rag: httpx.Client, redis_server: RedisServer) -> None:
    pid = create(rag)
    sync(rag, pid, FILES)
    before = project_keys(redis_server, pid)
    unknown = "p_" + "0" * 24
    for method, suffix, body in [("GET", "", None), ("DELETE", "", None),
                                 ("POST", "/diff", {"files": {"a.py": "0" * 64}}),
                                 ("POST", "/files", {"files": [{"path": "pkg/slugs.py", "content": "x = 1\n"}]}),
                                 ("POST", "/files", {"files": [], "delete": ["pkg/slugs.py"]}),
                                 ("POST", "/search", {"query": "slugify_title"})]:
        theirs = rag.request(method, f"/v1/projects/{pid}{suffix}", json=body, headers=auth(OTHER))
        assert theirs.status_code == 404, (method, suffix, theirs.text)
        assert error(theirs)["param"] == "project_id"
        # exactly the answer for an id that does not exist: nothing says the project is there
        missing = rag.request(method, f"/v1/projects/{unknown}{suffix}", json=body, headers=auth(OTHER))
        assert json.loads(theirs.text.replace(pid, unknown)) == missing.json()
    assert rag.get("/v1/projects", headers=auth(OTHER)).json() == {"object": "list", "data": []}
    assert project_keys(redis_server, pid) == before
    assert rag.get(f"/v1/projects/{pid}", headers=auth()).json()["version"] == 1


def test_the_proxy_credential_and_the_user_are_required(rag: httpx.Client) -> None:
    pid = create(rag)
    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", "/v1/projects", None), ("POST", "/v1/projects", {"name": "x"}),
        ("GET", f"/v1/projects/{pid}", None), ("DELETE", f"/v1/projects/{pid}", None),
        ("POST", f"/v1/projects/{pid}/diff", {"files": {}}), ("POST", f"/v1/projects/{pid}/files", {"files": []}),
        ("POST", f"/v1/projects/{pid}/search", {"query": "slug"})]
    for method, path, body in calls:
        anonymous = rag.request(method, path, json=body, headers=auth(None))
        assert anonymous.status_code == 400 and error(anonymous)["param"] == "X-Atlas-User-Id", (path, anonymous.text)
        for headers in ({"X-Atlas-User-Id": OWNER}, {"X-Atlas-User-Id": OWNER, "Authorization": "Bearer nope"}):
            refused = rag.request(method, path, json=body, headers=headers)
            assert refused.status_code == 401, (path, refused.text)
    assert rag.get(f"/v1/projects/{pid}", headers=auth()).status_code == 200  # nothing was deleted
    assert [p["name"] for p in rag.get("/v1/projects", headers=auth()).json()["data"]] == ["site"]


@pytest.mark.parametrize("position", [0, 2])
def test_a_hostile_path_is_400_naming_the_field_and_writes_nothing(rag: httpx.Client, redis_server: RedisServer,
                                                                   position: int) -> None:
    pid = create(rag)
    sync(rag, pid, {"README.md": "# Site\n"})
    before = project_keys(redis_server, pid)
    fine = [{"path": "a.py", "content": "a = 1\n"}, {"path": "b/c.py", "content": "c = 1\n"}][:position]
    for path in ["../x", "/etc/passwd", "a/../../b", "x\x00y", "p" * 600, ".git/config", 5]:
        batch = [*fine, {"path": path, "content": "import os\n"}]
        response = rag.post(f"/v1/projects/{pid}/files", json={"files": batch}, headers=auth())
        assert response.status_code == 400, (path, response.text)
        assert error(response)["param"] == f"files.{position}.path"
        assert error(response)["type"] == "invalid_request_error"
        assert project_keys(redis_server, pid) == before
    response = rag.post(f"/v1/projects/{pid}/files", json={"files": fine, "delete": ["README.md", "../etc"]},
                        headers=auth())
    assert (response.status_code, error(response)["param"]) == (400, "delete.1")
    too_big = rag.post(f"/v1/projects/{pid}/files", json={"files": [*fine, {"path": "big.txt", "content": "x" * 5000}]},
                       headers=auth())
    assert (too_big.status_code, error(too_big)["param"]) == (413, f"files.{position}.content")
    assert project_keys(redis_server, pid) == before
    assert rag.get(f"/v1/projects/{pid}", headers=auth()).json()["version"] == 1


def test_bad_bodies_are_400(rag: httpx.Client, redis_server: RedisServer) -> None:
    pid = create(rag)
    before = project_keys(redis_server, pid)
    for path in ("/v1/projects", f"/v1/projects/{pid}/diff", f"/v1/projects/{pid}/files",
                 f"/v1/projects/{pid}/search"):
        for content in (b"{not json", b"[1, 2]", b"\"files\"", b"", b"[" * 100_000):
            response = rag.post(path, content=content, headers=auth() | {"Content-Type": "application/json"})
            assert response.status_code == 400, (path, content[:10], response.text)
            assert "JSON object" in error(response)["message"]
    for path, body, param in [
        ("/v1/projects", {"name": ""}, "name"),
        (f"/v1/projects/{pid}/files", {"files": [], "mode": "force"}, "mode"),
        (f"/v1/projects/{pid}/files", {"files": {"a.py": "x"}}, "files"),
        (f"/v1/projects/{pid}/diff", {"files": ["a.py"]}, "files"),
        (f"/v1/projects/{pid}/diff", {"files": {"a.py": "xyz"}}, "files.a.py"),
        (f"/v1/projects/{pid}/search", {"query": ""}, "query"),
        (f"/v1/projects/{pid}/search", {"query": "slug", "k": 0}, "k"),
        (f"/v1/projects/{pid}/search", {"query": "slug", "mode": "psychic"}, "mode"),
    ]:
        response = rag.post(path, json=body, headers=auth())
        assert (response.status_code, error(response)["param"]) == (400, param), (path, body, response.text)
    assert project_keys(redis_server, pid) == before


def test_redis_down_is_503_at_once(service_env: dict[str, str]) -> None:
    env = service_env | {"ATLAS_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    with ServerThread(create_app(load_settings(Settings, environ=env))) as server, \
            httpx.Client(base_url=server.url, timeout=15) as client:
        for method, path, body in [("POST", "/v1/projects", {"name": "x"}), ("GET", "/v1/projects", None),
                                   ("POST", f"/v1/projects/p_{'0' * 24}/search", {"query": "slug"})]:
            started = time.monotonic()
            response = client.request(method, path, json=body, headers=auth())
            assert response.status_code == 503, (path, response.text)
            assert "Redis" in error(response)["message"] and response.headers["retry-after"]
            assert time.monotonic() - started < 10


def solve(client: httpx.Client, pid: str, user: str | None) -> httpx.Response:
    return client.post("/v1/solve", headers=auth(user), json={
        "problem": PROBLEM, "project": {"id": pid}, "budget": {"k": 1, "self_tests": False, "repair_rounds": 0}})


def prompts(llm: ServerThread) -> list[str]:
    return ["\n".join(str(m["content"]) for m in body.get("messages", [])) or user_text(body)
            for body in fake(llm).requests]


def test_a_solve_naming_a_project_retrieves_from_it_and_cites_it(rag: httpx.Client, llm: ServerThread) -> None:
    fake(llm).script = lambda body: ANSWER
    pid = create(rag)
    sync(rag, pid, FILES)

    # someone else's project, an unknown one, or no user at all: refused before the model is asked anything
    theirs = solve(rag, pid, OTHER)
    assert (theirs.status_code, error(theirs)["param"]) == (404, "project_id"), theirs.text
    assert solve(rag, "p_" + "0" * 24, OWNER).status_code == 404
    anonymous = solve(rag, pid, None)
    assert (anonymous.status_code, error(anonymous)["param"]) == (400, "project"), anonymous.text
    assert fake(llm).requests == []

    response = solve(rag, pid, OWNER)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["verified"] and "def shout_slug" in result["code"]
    header = f"# pkg/slugs.py:{SLUG_LINES[0]}-{SLUG_LINES[1]}"
    generation = [p for p in prompts(llm) if "shout_slug(title)" in p]
    assert generation, prompts(llm)
    assert all(header in p and "# zz-slug-marker" in p and "Turn a page title into the slug" in p
               for p in generation)
    assert {"path": "pkg/slugs.py", "start_line": SLUG_LINES[0], "end_line": SLUG_LINES[1], "kind": "function",
            "name": "slugify_title"} in result["citations"]
    assert all(c["path"] in FILES for c in result["citations"])

    # without a project, the same problem carries no project code
    fake(llm).requests.clear()
    plain = rag.post("/v1/solve", headers=auth(), json={"problem": PROBLEM, "budget": {"k": 1, "self_tests": False,
                                                                                       "repair_rounds": 0}})
    assert plain.status_code == 200 and plain.json()["citations"] == []
    assert not any("zz-slug-marker" in p for p in prompts(llm))
