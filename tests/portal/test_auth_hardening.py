"""The portal's authentication under attack: bounded inputs, throttling that cannot lock the admin out, sessions
that end when they should, a cap on keys per user."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from atlas_core.settings import load_settings
from atlas_portal.app import create_app
from atlas_portal.settings import Settings
from tests.conftest import ServerThread
from tests.portal.conftest import HOST, bootstrap, login, make_user


@pytest.fixture
def server(portal_env: dict[str, str]) -> Iterator[str]:
    """The portal on a real socket: loopback is 127.0.0.0/8, so clients can call from different addresses."""
    with ServerThread(create_app(load_settings(Settings, environ=portal_env))) as running:
        yield running.url


def _from(address: str) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=30)


def _redis_keys(portal: TestClient) -> dict[bytes, int]:
    async def sizes() -> dict[bytes, int]:
        redis = portal.app.state.redis  # type: ignore[attr-defined]
        return {k: len(k) for k in await redis.keys("*")}

    assert portal.portal is not None
    return portal.portal.call(sizes)


def test_a_huge_login_is_refused_and_stores_nothing(portal: TestClient) -> None:
    bootstrap(portal)
    huge = portal.post("/api/auth/login", json={"username": "a" * 2_000_000, "password": "x" * 12})
    assert huge.status_code in (400, 413), huge.text
    assert all(size < 300 for size in _redis_keys(portal).values())  # no key carries the name


def test_the_portal_refuses_bodies_over_its_limit(portal: TestClient) -> None:
    answer = portal.post("/api/auth/register", content=b'{"username": "' + b"a" * 2_000_000 + b'"}',
                         headers={"Content-Type": "application/json"})
    assert answer.status_code == 413, answer.text


def _bootstrap(url: str) -> str:
    password: str = httpx.post(f"{url}/internal/bootstrap", headers=HOST).json()["password"]
    return password


def test_bad_logins_from_one_address_do_not_lock_the_admin_out(server: str) -> None:
    password = _bootstrap(server)
    with _from("127.0.0.9") as attacker, _from("127.0.0.4") as operator:
        for _ in range(12):
            assert attacker.post(f"{server}/api/auth/login", json={"username": "admin", "password": "wrong-password"}
                                 ).status_code in (401, 429)
        answer = operator.post(f"{server}/api/auth/login", json={"username": "admin", "password": password})
    assert answer.status_code == 200, answer.text


def test_guessing_across_many_names_from_one_address_is_throttled(server: str) -> None:
    _bootstrap(server)
    with _from("127.0.0.10") as attacker:
        answers = [attacker.post(f"{server}/api/auth/login", json={"username": f"user{i}", "password": "wrong-pw1"})
                   for i in range(40)]
    assert [a.status_code for a in answers][-1] == 429
    assert int(answers[-1].headers["retry-after"]) >= 1


def test_logout_ends_the_session_at_once(portal: TestClient) -> None:
    admin = login(portal, "admin", bootstrap(portal)["password"])
    assert portal.post("/api/auth/logout", headers=admin).status_code == 204
    assert portal.get("/api/auth/me", headers=admin).status_code == 401


def test_a_password_change_ends_every_other_session(portal: TestClient) -> None:
    password = bootstrap(portal)["password"]
    first, second = login(portal, "admin", password), login(portal, "admin", password)
    changed = portal.post("/api/auth/password", headers=first,
                          json={"current_password": password, "new_password": "a-new-password-1234"})
    assert changed.status_code == 204, changed.text
    assert portal.get("/api/auth/me", headers=second).status_code == 401
    assert portal.get("/api/auth/me", headers=first).status_code == 401  # the changed one too: log in again
    assert portal.post("/api/auth/login", json={"username": "admin", "password": "a-new-password-1234"}
                       ).status_code == 200


def test_deactivation_ends_sessions_for_good(portal: TestClient) -> None:
    admin = login(portal, "admin", bootstrap(portal)["password"])
    user = make_user(portal, admin, "carol")
    user_id = portal.get("/api/auth/me", headers=user).json()["id"]
    assert portal.patch(f"/api/users/{user_id}", headers=admin, json={"is_active": False}).status_code == 200
    time.sleep(0.01)
    assert portal.get("/api/auth/me", headers=user).status_code == 401
    assert portal.patch(f"/api/users/{user_id}", headers=admin, json={"is_active": True}).status_code == 200
    assert portal.get("/api/auth/me", headers=user).status_code == 401  # reactivation does not revive old sessions


def test_keys_per_user_are_capped(portal_env: dict[str, str]) -> None:
    settings = load_settings(Settings, environ=portal_env | {"ATLAS_MAX_KEYS_PER_USER": "3"})
    with TestClient(create_app(settings)) as portal:
        admin = login(portal, "admin", bootstrap(portal)["password"])
        user = make_user(portal, admin, "dave")
        codes = [portal.post("/api/keys", headers=user, json={"name": f"k{i}"}).status_code for i in range(4)]
        assert codes == [201, 201, 201, 409]
        refused = portal.post("/api/keys", headers=user, json={"name": "k9"}).json()["error"]["message"]
        assert "ATLAS_MAX_KEYS_PER_USER" in refused
        first = portal.get("/api/keys", headers=user).json()[0]["id"]
        assert portal.delete(f"/api/keys/{first}", headers=user).status_code == 204
        assert portal.post("/api/keys", headers=user, json={"name": "k4"}).status_code == 201
