"""Usage rows name their user and key (a deleted one keeps its ids, with no name), and the model list says which
models chat: the embedding model is no chat model."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from atlas_portal.rollup import store
from tests.conftest import ServerThread
from tests.portal.conftest import PROXY, bootstrap, login, make_user


@pytest.fixture
def portal_env(service_env: dict[str, str], database_url: str, llm: ServerThread) -> dict[str, str]:
    """The scripted llama-server stands in for the embedding server: its one model ("fake") is the embed model."""
    return service_env | {"ATLAS_DATABASE_URL": database_url, "ATLAS_EMBED_URL": llm.url}


def entry(n: int, *, user_id: int, key_id: int) -> tuple[bytes, dict[bytes, bytes]]:
    """A usage-stream entry as the proxy writes it: one request of 3 prompt and 4 completion tokens."""
    fields = {b"ts": str(time.time()).encode(), b"user_id": str(user_id).encode(), b"key_id": str(key_id).encode(),
              b"model": b"atlas", b"status": b"200", b"prompt_tokens": b"3", b"completion_tokens": b"4",
              b"latency_ms": b"5"}
    return f"{1_700_000_000_000 + n}-0".encode(), fields


def test_usage_rows_carry_the_user_and_key_names(portal: TestClient) -> None:
    admin = login(portal, "admin", bootstrap(portal)["password"])
    alice, bob = make_user(portal, admin, "alice"), make_user(portal, admin, "bob")
    laptop = portal.post("/api/keys", headers=alice, json={"name": "<b>laptop</b>"}).json()
    gone = portal.post("/api/keys", headers=alice, json={"name": "old"}).json()
    bobs = portal.post("/api/keys", headers=bob, json={"name": "bob's"}).json()
    assert portal.delete(f"/api/keys/{gone['id']}", headers=alice).status_code == 204
    alice_id = laptop["user_id"]
    batch = [entry(1, user_id=alice_id, key_id=laptop["id"]), entry(2, user_id=alice_id, key_id=gone["id"]),
             # a key id that is another user's key: its name is not this row's
             entry(3, user_id=alice_id, key_id=bobs["id"]),
             entry(4, user_id=4242, key_id=4343)]  # a user deleted with their keys
    factory = portal.app.state.sessions  # type: ignore[attr-defined]
    assert portal.portal is not None
    portal.portal.call(store, factory, batch, "test")

    rows = portal.get("/api/usage", headers=admin).json()["rows"]
    names = {(r["user_id"], r["key_id"]): (r["username"], r["key_name"]) for r in rows}
    assert names == {(alice_id, laptop["id"]): ("alice", "<b>laptop</b>"), (alice_id, gone["id"]): ("alice", None),
                     (alice_id, bobs["id"]): ("alice", None), (4242, 4343): (None, None)}
    own = portal.get("/api/usage", headers=alice).json()["rows"]
    assert {(r["username"], r["key_name"]) for r in own} == {("alice", "<b>laptop</b>"), ("alice", None)}
    assert portal.get("/api/usage", headers=bob).json()["rows"] == []


def test_the_model_list_says_which_models_chat(portal: TestClient) -> None:
    admin = login(portal, "admin", bootstrap(portal)["password"])
    deadline = time.monotonic() + 10
    while not any(m["route"] == "embed" for m in portal.get("/internal/models", headers=PROXY).json()):
        assert time.monotonic() < deadline, "the registry never listed the embedding server's model"
        time.sleep(0.1)
    models = {m["id"]: (m["route"], m["chat"]) for m in portal.get("/api/models", headers=admin).json()}
    assert models == {"fake": ("embed", False), "atlas": ("rag", True)}
