"""api-portal: users, keys, validation for the proxy, revocation events, usage roll-up, models, bootstrap."""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from atlas_core.schemas import KEY_EVENTS_CHANNEL, USAGE_STREAM
from tests.conftest import RedisServer
from tests.portal.conftest import HOST, PROXY, bootstrap, login, make_user


def validate(client: TestClient, key: str) -> tuple[int, dict[str, object]]:
    response = client.post("/internal/keys/validate", headers=PROXY, json={"key": key})
    return response.status_code, response.json()


def test_bootstrap_once_and_only_with_the_service_credential(portal: TestClient) -> None:
    assert portal.post("/internal/bootstrap").status_code == 401
    first = bootstrap(portal)
    assert first["username"] == "admin" and first["key"].startswith("sk-llm-")
    assert portal.post("/internal/bootstrap", headers=HOST).status_code == 409
    admin = login(portal, "admin", first["password"])
    assert portal.get("/api/auth/me", headers=admin).json()["is_admin"] is True
    assert validate(portal, first["key"])[0] == 200


def test_registration_is_closed_and_the_admin_creates_users(portal: TestClient) -> None:
    body = {"username": "mallory", "email": "m@example.com", "password": "long-enough-password"}
    closed = portal.post("/api/auth/register", json=body)
    assert closed.status_code == 403
    assert "registration is closed" in closed.json()["error"]["message"]
    admin = login(portal, "admin", bootstrap(portal)["password"])
    assert portal.post("/api/auth/register", headers=admin, json=body).status_code == 201
    assert portal.post("/api/auth/register", headers=admin, json=body).status_code == 409
    bad = portal.post("/api/auth/register", headers=admin, json=body | {"email": "not-an-email", "username": "x2y"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "email"
    user = login(portal, "mallory", "long-enough-password")
    sneaky = portal.post("/api/auth/register", headers=user, json=body | {"username": "eve", "email": "e@x.io"})
    assert sneaky.status_code == 403  # a plain user cannot create accounts either


def test_login_by_username_or_email_and_bad_credentials(portal: TestClient) -> None:
    admin = login(portal, "admin", bootstrap(portal)["password"])
    make_user(portal, admin, "alice")
    by_email = portal.post("/api/auth/login", json={"email": "ALICE@example.com", "password": "alice-password-123"})
    assert by_email.status_code == 200 and by_email.json()["user"]["username"] == "alice"
    wrong = portal.post("/api/auth/login", json={"username": "alice", "password": "nope-nope-nope"})
    assert wrong.status_code == 401
    assert portal.post("/api/auth/login", json={"password": "x"}).status_code == 400
    assert portal.get("/api/auth/me").status_code == 401
    assert portal.get("/api/auth/me", headers={"Authorization": "Bearer forged.jwt.token"}).status_code == 401


def test_repeated_failed_logins_are_throttled(portal: TestClient) -> None:
    bootstrap(portal)
    # five free attempts on one account from one address; the sixth is checked and starts the backoff
    for _ in range(6):
        assert portal.post("/api/auth/login", json={"username": "admin", "password": "wrong"}).status_code == 401
    throttled = portal.post("/api/auth/login", json={"username": "admin", "password": "wrong"})
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) >= 1


def test_keys_are_shown_once_stored_hashed_and_private_to_their_owner(
    portal: TestClient, portal_env: dict[str, str]
) -> None:
    admin = login(portal, "admin", bootstrap(portal)["password"])
    alice, bob = make_user(portal, admin, "alice"), make_user(portal, admin, "bob")
    created = portal.post("/api/keys", headers=alice, json={"name": "laptop", "rate_limit": 10,
                                                             "allowed_models": ["atlas"], "expires_days": 30})
    assert created.status_code == 201
    key = created.json()
    assert key["key"].startswith("sk-llm-") and len(key["key"]) >= len("sk-llm-") + 43
    assert key["rate_limit"] == 10 and key["tokens_per_min"] == 100_000 and key["expires_at"]
    listed = portal.get("/api/keys", headers=alice).json()
    assert [k["id"] for k in listed] == [key["id"]] and "key" not in listed[0]
    assert key["key"].startswith(listed[0]["prefix"])
    # Only a keyed hash is stored: the raw key appears nowhere in the database.
    engine = create_engine(portal_env["ATLAS_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT * FROM api_keys")).all()
    engine.dispose()
    assert rows and not any(key["key"] in str(row) for row in rows)
    # Someone else's key is "not found", for reading, toggling and deleting alike.
    assert portal.get("/api/keys", headers=bob).json() == []
    assert portal.patch(f"/api/keys/{key['id']}/toggle", headers=bob).status_code == 404
    assert portal.delete(f"/api/keys/{key['id']}", headers=bob).status_code == 404
    assert {k["user_id"] for k in portal.get("/api/keys", headers=admin).json()} >= {key["user_id"]}


def test_validation_follows_toggle_delete_expiry_and_deactivation(
    portal: TestClient, portal_env: dict[str, str]
) -> None:
    admin = login(portal, "admin", bootstrap(portal)["password"])
    alice = make_user(portal, admin, "alice")
    key = portal.post("/api/keys", headers=alice, json={"name": "k"}).json()
    assert portal.post("/internal/keys/validate", json={"key": key["key"]}).status_code == 401  # no credential
    status, info = validate(portal, key["key"])
    assert status == 200 and info["username"] == "alice" and info["key_id"] == key["id"]
    assert validate(portal, "sk-llm-" + "x" * 43)[0] == 401

    portal.patch(f"/api/keys/{key['id']}/toggle", headers=alice)
    status, info = validate(portal, key["key"])
    assert status == 401 and "revoked" in str(info)
    assert portal.patch(f"/api/keys/{key['id']}/toggle", headers=alice).status_code == 403  # owners only revoke
    portal.patch(f"/api/keys/{key['id']}/toggle", headers=admin)
    assert validate(portal, key["key"])[0] == 200

    engine = create_engine(portal_env["ATLAS_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as connection:
        connection.execute(text("UPDATE api_keys SET expires_at = :past WHERE id = :id"),
                           {"past": "2020-01-01 00:00:00", "id": key["id"]})
    engine.dispose()
    status, info = validate(portal, key["key"])
    assert status == 401 and "expired" in str(info)

    second = portal.post("/api/keys", headers=alice, json={"name": "k2"}).json()
    users = portal.get("/api/users", headers=admin).json()
    alice_id = next(u["id"] for u in users if u["username"] == "alice")
    assert portal.patch(f"/api/users/{alice_id}", headers=admin, json={"is_active": False}).status_code == 200
    assert validate(portal, second["key"])[0] == 401
    assert portal.get("/api/auth/me", headers=alice).status_code == 401

    assert portal.delete(f"/api/keys/{second['id']}", headers=admin).status_code == 204
    assert validate(portal, second["key"])[0] == 401


def test_revocations_are_published(portal: TestClient, redis_server: RedisServer) -> None:
    admin = login(portal, "admin", bootstrap(portal)["password"])
    key = portal.post("/api/keys", headers=admin, json={"name": "k"}).json()
    with redis_server.client() as client:
        pubsub = client.pubsub()
        pubsub.subscribe(KEY_EVENTS_CHANNEL)
        pubsub.get_message(timeout=1)  # the subscription confirmation
        portal.patch(f"/api/keys/{key['id']}/toggle", headers=admin)
        message = pubsub.get_message(timeout=2)
        pubsub.close()
    assert message is not None
    assert json.loads(message["data"]) == {"key_id": key["id"], "user_id": key["user_id"], "revoked": True}


def test_usage_is_rolled_up_per_user_key_and_day(portal: TestClient, redis_server: RedisServer) -> None:
    admin = login(portal, "admin", bootstrap(portal)["password"])
    alice, bob = make_user(portal, admin, "alice"), make_user(portal, admin, "bob")
    key = portal.post("/api/keys", headers=alice, json={"name": "k"}).json()
    now = time.time()
    with redis_server.client() as client:
        client.delete(USAGE_STREAM)
        for status, prompt, completion in ((200, 10, 5), (200, 20, 7), (500, 3, 0)):
            client.xadd(USAGE_STREAM, {"ts": now, "key_id": key["id"], "user_id": key["user_id"], "model": "m1",
                                       "status": status, "prompt_tokens": prompt, "completion_tokens": completion,
                                       "latency_ms": 12.5})

    deadline = time.monotonic() + 10
    while (usage := portal.get("/api/usage", headers=alice).json())["requests"] < 3:
        assert time.monotonic() < deadline, usage
        time.sleep(0.1)
    assert usage["requests"] == 3 and usage["prompt_tokens"] == 33 and usage["completion_tokens"] == 12
    assert usage["rows"][0]["errors"] == 1 and usage["rows"][0]["model"] == "m1"
    assert portal.get("/api/usage", headers=bob).json()["requests"] == 0
    assert portal.get("/api/usage", headers=admin).json()["requests"] >= 3


def test_models_can_be_renamed_and_hidden_by_admins(portal: TestClient) -> None:
    admin = login(portal, "admin", bootstrap(portal)["password"])
    alice = make_user(portal, admin, "alice")
    ids = [m["id"] for m in portal.get("/internal/models", headers=PROXY).json()]
    assert "atlas" in ids  # llama-server is down in this test, so only the virtual model is known
    assert portal.patch("/api/models/atlas", headers=alice, json={"hidden": True}).status_code == 403
    assert portal.patch("/api/models/nope", headers=admin, json={"hidden": True}).status_code == 404
    assert portal.patch("/api/models/atlas", headers=admin, json={"display_name": "atlas-verified"}).status_code == 200
    entries = portal.get("/internal/models", headers=PROXY).json()
    assert {"id": "atlas-verified", "upstream": "atlas", "route": "rag", "owned_by": "atlas"} in entries
    assert [m["id"] for m in portal.get("/v1/models", headers=alice).json()["data"]] == ["atlas-verified"]
    portal.patch("/api/models/atlas", headers=admin, json={"hidden": True})
    assert portal.get("/internal/models", headers=PROXY).json() == []
    assert portal.get("/api/models", headers=admin).json()[0]["hidden"] is True


@pytest.mark.parametrize("path", ["/api/keys", "/api/usage", "/api/models", "/v1/models", "/api/users"])
def test_every_api_needs_a_login(portal: TestClient, path: str) -> None:
    assert portal.get(path).status_code == 401


def test_users_may_tighten_but_not_loosen_their_limits(portal: TestClient) -> None:
    admin = login(portal, "admin", bootstrap(portal)["password"])
    alice = make_user(portal, admin, "alice")
    assert portal.post("/api/keys", headers=alice, json={"name": "k", "rate_limit": 5}).status_code == 201
    for loose in ({"rate_limit": 0}, {"rate_limit": 61}, {"tokens_per_min": 0}, {"max_concurrent": 100}):
        refused = portal.post("/api/keys", headers=alice, json={"name": "k"} | loose)
        assert refused.status_code == 403 and "ask an admin" in refused.json()["error"]["message"]
    assert portal.post("/api/keys", headers=admin, json={"name": "k", "rate_limit": 0}).status_code == 201
    assert portal.patch("/api/keys/99999999999999999999/toggle", headers=alice).status_code == 400
