"""Passwords (argon2id), portal logins (JWT, HS256) and API keys (``sk-llm-``, stored as HMAC-SHA256)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

import anyio
import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

KEY_PREFIX = "sk-llm-"
_hasher = PasswordHasher()  # argon2id with the library's (RFC 9106 low-memory) parameters
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))  # verified against for unknown users: same timing


async def hash_password(password: str) -> str:
    # ~50 ms of CPU: in a worker thread, so logins never stall the event loop.
    return await anyio.to_thread.run_sync(_hasher.hash, password)


async def verify_password(password: str, password_hash: str | None) -> bool:
    def verify() -> bool:
        try:
            return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    return await anyio.to_thread.run_sync(verify)


def issue_token(user_id: int, session_id: str, secret: str, ttl_s: int) -> str:
    """A login: the user and the server-side session it belongs to (``sessions``), which logout, a password
    change or deactivation end at once."""
    now = int(time.time())
    return jwt.encode({"sub": str(user_id), "sid": session_id, "iat": now, "exp": now + ttl_s,
                       "aud": "atlas-portal"}, secret, algorithm="HS256")


def read_token(token: str, secret: str) -> tuple[int, str] | None:
    """``(user id, session id)`` of a valid, unexpired token, else None (its session may still have ended)."""
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], audience="atlas-portal",
                            options={"require": ["sub", "sid", "exp", "iat"]})
        return int(claims["sub"]), str(claims["sid"])
    except (jwt.InvalidTokenError, ValueError):
        return None


def new_key() -> str:
    """``sk-llm-`` + 32 random bytes, url-safe base64 (43 characters)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str, secret: str) -> str:
    return hmac.new(secret.encode(), key.encode(), hashlib.sha256).hexdigest()


def display_prefix(key: str) -> str:
    return key[: len(KEY_PREFIX) + 5]
