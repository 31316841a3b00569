"""Service-to-service credentials: bearer tokens compared in constant time, one per kind of caller, so each opens
only what its holder needs (the metrics token reads /metrics, the proxy token acts for users, the recovery token
bootstraps and recovers the admin)."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from fastapi import HTTPException, Request, status
from pydantic import SecretStr


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def presents(request: Request, token: SecretStr) -> bool:
    """Whether the request carries ``token`` as its bearer credential (compared in constant time)."""
    presented = bearer(request)
    return presented is not None and hmac.compare_digest(presented.encode(), token.get_secret_value().encode())


def require_token(token: SecretStr, key: str) -> Callable[[Request], None]:
    """A dependency that admits only callers presenting ``token`` (the setting ``key`` names it in the error)."""

    def check(request: Request) -> None:
        if not presents(request, token):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                f"this endpoint needs a service credential: send 'Authorization: Bearer <{key}>'",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check
