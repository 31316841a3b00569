"""The client of the sandbox service: every call carries a fresh single-use capability token, minted here with
the signing key (the sandbox holds only the public half)."""

from __future__ import annotations

import asyncio
import secrets
from contextlib import nullcontext
from typing import Any

import httpx

from atlas_core.capability import mint, signing_key
from atlas_core.http import json_object
from atlas_rag.timeline import Timeline

RETRIES = 3  # a sandbox that is full answers 503 with Retry-After: wait and try again this many times


class SandboxUnavailable(Exception):
    """The sandbox could not judge (down, overloaded, or it failed itself): never a verdict on the code."""


class SandboxRefused(SandboxUnavailable):
    """The sandbox will not run this at all (a 4xx: a language it lacks, limits it does not allow): trying
    again cannot help."""


class SandboxClient:
    def __init__(self, http: httpx.AsyncClient, url: str, signing_secret: str, *, issuer: str = "rag-api",
                 timeout_s: float = 300.0, parallel: int = 4) -> None:
        self._http = http
        self._slots = asyncio.Semaphore(parallel)  # this process's calls in flight: the sandbox admits few more
        self._url = url
        self._key = signing_key(signing_secret)
        self._issuer = issuer
        self._timeout = timeout_s

    async def judge(self, body: dict[str, Any], task_id: str, timeline: Timeline | None = None) -> dict[str, Any]:
        return await self._post("/judge", body, task_id, timeline)

    async def execute(self, body: dict[str, Any], task_id: str, timeline: Timeline | None = None
                      ) -> dict[str, Any]:
        return await self._post("/execute", body, task_id, timeline)

    async def _post(self, path: str, body: dict[str, Any], task_id: str, timeline: Timeline | None
                    ) -> dict[str, Any]:
        """``timeline`` counts the time the sandbox works on the call, not the wait for a free slot."""
        for attempt in range(RETRIES + 1):
            token = mint(self._key, issuer=self._issuer, task_id=f"{task_id}-{secrets.token_hex(4)}",
                         languages=(body.get("language", "python"),), ttl_s=60)
            async with self._slots:
                try:
                    with timeline.track("sandbox") if timeline else nullcontext():
                        response = await self._http.post(f"{self._url}{path}", json=body, timeout=self._timeout,
                                                         headers={"Authorization": f"Bearer {token}"})
                except httpx.HTTPError as exc:
                    raise SandboxUnavailable(f"the sandbox is unreachable ({type(exc).__name__})") from None
            if response.status_code != 503:
                break
            if attempt == RETRIES:
                raise SandboxUnavailable("the sandbox is busy or not ready")
            await asyncio.sleep(_retry_after(response))
        if response.status_code != 200:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = f"status {response.status_code}"
            refused = SandboxRefused if 400 <= response.status_code < 500 else SandboxUnavailable
            raise refused(f"the sandbox refused the run: {message}")
        result = json_object(response)
        if result is None:
            raise SandboxUnavailable("the sandbox answered something that is not a result")
        return result


def _retry_after(response: httpx.Response) -> float:
    try:
        return min(2.0, max(0.1, float(response.headers.get("retry-after", "0.5"))))
    except ValueError:
        return 0.5
