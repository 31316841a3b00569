"""The client of the sandbox service: every call carries a fresh single-use capability token, minted here with
the signing key (the sandbox holds only the public half)."""

from __future__ import annotations

import secrets
from typing import Any

import httpx

from atlas_core.capability import mint, signing_key


class SandboxUnavailable(Exception):
    """The sandbox could not judge (down, overloaded, or it failed itself): never a verdict on the code."""


class SandboxClient:
    def __init__(self, http: httpx.AsyncClient, url: str, signing_secret: str, *, issuer: str = "rag-api",
                 timeout_s: float = 300.0) -> None:
        self._http = http
        self._url = url
        self._key = signing_key(signing_secret)
        self._issuer = issuer
        self._timeout = timeout_s

    async def judge(self, body: dict[str, Any], task_id: str) -> dict[str, Any]:
        return await self._post("/judge", body, task_id)

    async def execute(self, body: dict[str, Any], task_id: str) -> dict[str, Any]:
        return await self._post("/execute", body, task_id)

    async def _post(self, path: str, body: dict[str, Any], task_id: str) -> dict[str, Any]:
        token = mint(self._key, issuer=self._issuer, task_id=f"{task_id}-{secrets.token_hex(4)}",
                     languages=(body.get("language", "python"),), ttl_s=60)
        try:
            response = await self._http.post(f"{self._url}{path}", json=body, timeout=self._timeout,
                                             headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as exc:
            raise SandboxUnavailable(f"the sandbox is unreachable ({type(exc).__name__})") from None
        if response.status_code == 503:
            raise SandboxUnavailable("the sandbox is busy or not ready")
        if response.status_code != 200:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = f"status {response.status_code}"
            raise SandboxUnavailable(f"the sandbox refused the run: {message}")
        result: dict[str, Any] = response.json()
        return result
