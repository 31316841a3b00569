"""Service-to-service credential: a bearer token compared in constant time."""

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


def require_service_token(token: SecretStr) -> Callable[[Request], None]:
    """A dependency that admits only callers presenting the service token."""

    def check(request: Request) -> None:
        if not presents(request, token):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "this endpoint needs the service credential: send 'Authorization: Bearer <ATLAS_SERVICE_TOKEN>'",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check
