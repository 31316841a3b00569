"""Signing in with the portal's accounts, and the dashboard's own sessions.

The dashboard never sees a password hash or the portal's JWT secret: it passes the sign-in to the portal
(``/api/auth/login``, with the visitor's address in X-Forwarded-For for the portal's login throttle) and keeps the
token the portal gives back in a server-side session in Redis. The browser holds only a random session id, in an
HttpOnly, SameSite=Strict cookie. Redis holds the id's SHA-256 as the key and the portal's token sealed (AES-GCM)
with a key derived from the id, so a copy of Redis yields neither a live cookie nor a usable token. Data the
viewer may see comes from the portal with the viewer's own token, so the portal decides, as it does for its own
page, who sees whose usage. Every ``RECHECK_S`` the session asks the portal who its user is now: a deactivated
user or a revoked portal session loses the dashboard at once, an admin who is one no more loses the admin's
view. A user keeps at most ``MAX_SESSIONS`` sign-ins (the oldest goes)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any

import httpx
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from redis.asyncio import Redis

from atlas_dashboard.store import PREFIX

COOKIE = "atlas_dashboard"
MAX_SESSIONS = 10
RECHECK_S = 60.0
PORTAL_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Viewer:
    user_id: int
    username: str
    is_admin: bool
    token: str  # the portal's token for this user, never sent to the browser (sealed in Redis)
    csrf: str  # sent back with every state-changing form
    checked: float = 0.0  # when the portal last confirmed who this is


class PortalError(Exception):
    def __init__(self, status: int, message: str, retry_after: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


def _key(sid: str) -> str:
    return f"{PREFIX}:session:{hashlib.sha256(sid.encode()).hexdigest()}"


def _cipher(sid: str) -> AESGCM:
    # A different derivation from the Redis key's, so knowing the key name tells nothing about this one.
    return AESGCM(hashlib.sha256(b"atlas-dashboard-token\0" + sid.encode()).digest())


def _seal(sid: str, viewer: Viewer) -> str:
    nonce = os.urandom(12)
    sealed = nonce + _cipher(sid).encrypt(nonce, viewer.token.encode(), None)
    return json.dumps(asdict(viewer) | {"token": base64.b64encode(sealed).decode()})


def _unseal(sid: str, raw: bytes | str) -> Viewer | None:
    try:
        fields = json.loads(raw)
        sealed = base64.b64decode(fields["token"])
        fields["token"] = _cipher(sid).decrypt(sealed[:12], sealed[12:], None).decode()
        return Viewer(**fields)
    except (ValueError, TypeError, KeyError, InvalidTag):  # written by another version, or tampered with
        return None


def _user_key(user_id: int) -> str:
    return f"{PREFIX}:sessions:{user_id}"


class DashboardSessions:
    """The dashboard's server-side sign-ins in Redis, each sealed with its own session id (see above)."""

    def __init__(self, redis: Redis, ttl_s: int) -> None:
        self._redis = redis
        self._ttl_s = ttl_s

    async def create(self, viewer: Viewer, expires_in: int) -> tuple[str, int]:
        """``(session id, lifetime)``: the session ends with the portal's token, or sooner."""
        sid = secrets.token_urlsafe(32)
        ttl = max(1, min(self._ttl_s, expires_in))
        now = time.time()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(_key(sid), _seal(sid, viewer), ex=ttl)
            pipe.zadd(_user_key(viewer.user_id), {_key(sid): now})
            pipe.expire(_user_key(viewer.user_id), self._ttl_s)
            pipe.zrange(_user_key(viewer.user_id), 0, -MAX_SESSIONS - 1)
            pipe.zremrangebyrank(_user_key(viewer.user_id), 0, -MAX_SESSIONS - 1)
            *_, oldest, _ = await pipe.execute()
        if oldest:
            await self._redis.delete(*oldest)
        return sid, ttl

    async def get(self, sid: str | None) -> Viewer | None:
        if not sid or len(sid) > 100:
            return None
        raw = await self._redis.get(_key(sid))
        return _unseal(sid, raw) if raw else None

    async def update(self, sid: str, viewer: Viewer) -> None:
        """The session's viewer as the portal now says it is (its expiry unchanged)."""
        await self._redis.set(_key(sid), _seal(sid, viewer), keepttl=True, xx=True)

    async def end(self, sid: str, viewer: Viewer) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(_key(sid))
            pipe.zrem(_user_key(viewer.user_id), _key(sid))
            await pipe.execute()


class Portal:
    """The calls the dashboard makes to api-portal; a failure is a ``PortalError`` with the status to answer."""

    def __init__(self, http: httpx.AsyncClient, base_url: str) -> None:
        self._http = http
        self._base = base_url

    async def _call(self, method: str, path: str, *, token: str | None = None, json_body: Any = None,
                    headers: dict[str, str] | None = None, params: dict[str, Any] | None = None) -> Any:
        sent = dict(headers or {}) | ({"Authorization": f"Bearer {token}"} if token else {})
        try:
            answer = await self._http.request(method, f"{self._base}{path}", json=json_body, headers=sent,
                                              params=params, timeout=PORTAL_TIMEOUT_S)
        except httpx.HTTPError as exc:
            raise PortalError(503, f"the portal is unavailable ({type(exc).__name__}); try again shortly") from None
        if answer.status_code >= 400:
            raise PortalError(_status(answer.status_code), _message(answer), answer.headers.get("retry-after"))
        try:
            return answer.json() if answer.content else None
        except ValueError:
            raise PortalError(503, "the portal gave an answer that is not JSON") from None

    async def login(self, name: str, password: str, address: str) -> tuple[Viewer, int]:
        body = await self._call("POST", "/api/auth/login", json_body={"username": name, "password": password},
                                headers={"X-Forwarded-For": address})
        try:
            user = body["user"]
            viewer = Viewer(int(user["id"]), str(user["username"]), bool(user["is_admin"]),
                            str(body["access_token"]), secrets.token_urlsafe(24), time.time())
            return viewer, int(body["expires_in"])
        except (TypeError, KeyError, ValueError):
            raise PortalError(503, "the portal gave an unexpected answer to the sign-in") from None

    async def me(self, token: str) -> tuple[str, bool]:
        """``(username, is_admin)`` as the portal says now; PortalError 401 when the token is no longer good."""
        body = await self._call("GET", "/api/auth/me", token=token)
        try:
            return str(body["username"]), bool(body["is_admin"])
        except (TypeError, KeyError):
            raise PortalError(503, "the portal gave an unexpected answer") from None

    async def logout(self, token: str) -> None:
        await self._call("POST", "/api/auth/logout", token=token)

    async def usage(self, token: str, days: int) -> list[dict[str, Any]]:
        body = await self._call("GET", "/api/usage", token=token, params={"days": days})
        rows = body.get("rows") if isinstance(body, dict) else None
        if not isinstance(rows, list):
            raise PortalError(503, "the portal gave an unexpected answer for usage")
        return [row for row in rows if isinstance(row, dict)]


def _status(status: int) -> int:
    """The portal's refusal as the dashboard answers it: its own 5xx are a dependency down."""
    return 503 if status >= 500 else status


def _message(answer: httpx.Response) -> str:
    try:
        body = answer.json()
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str):
        return detail
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("message", ""))[:300]
    return f"the portal answered {answer.status_code}"
