"""The client of the sandbox service, the only one: the engine judges candidates with it and atlas-bench scores
answers on hidden tests with it. Every call carries a fresh single-use capability token, minted here with the
signing key (the sandbox holds only the public half).

Retry policy (one for every caller; judging and executing are idempotent, so asking again is safe):

- 429 and 503 (the sandbox is full, or its Redis is not ready) are asked again after the answer's
  ``Retry-After``, held to 0.1 to 2 s (0.5 s when it gives none);
- a connection refused, reset or closed before an answer (an ``httpx.TransportError`` that is not a timeout) is
  asked again after 0.5 s;
- at most ``RETRIES`` times, each with a newly minted token (a token is good for one call only); then
  ``SandboxUnavailable``;
- a timeout is not retried: the sandbox may still be running the call, and the caller's budget is spent
  (``SandboxUnavailable``);
- any other 4xx is ``SandboxRefused`` (asking again cannot help), any other non-200 ``SandboxUnavailable``.

Usage::

    sandbox = SandboxClient(http, "http://127.0.0.1:8020", secret, issuer="atlas-bench")
    result = await sandbox.judge(body, task_id="HumanEval/0", timeout_s=body["deadline_s"] + 30)
"""

from __future__ import annotations

import asyncio
import secrets
from contextlib import nullcontext
from typing import Any

import httpx

from atlas_core.capability import mint, signing_key
from atlas_core.errors import Retryable, Unrecoverable
from atlas_core.http import json_object
from atlas_engine.timeline import Timeline

RETRIES = 3
RETRY_STATUSES = frozenset({429, 503})
WAIT_S = (0.1, 2.0)  # the bounds put on a Retry-After: the sandbox asks for 1 s, a proxy in front may say more
DEFAULT_WAIT_S = 0.5  # no Retry-After (or an unreadable one), or no answer at all


class SandboxUnavailable(Retryable):
    """The sandbox could not judge (down, overloaded, or it failed itself): never a verdict on the code."""


class SandboxRefused(SandboxUnavailable, Unrecoverable):
    """The sandbox will not run this at all (a 4xx: a language it lacks, limits it does not allow): trying
    again cannot help."""


class SandboxClient:
    """``timeout_s`` is each call's default limit (``judge``/``execute`` take their own for calls with long
    deadlines); ``token_ttl_s`` how long a minted token is good for, counted from when the call is sent, not
    queued; ``parallel`` this process's calls in flight at once (the sandbox admits few more)."""

    def __init__(self, http: httpx.AsyncClient, url: str, signing_secret: str, *, issuer: str = "rag-api",
                 timeout_s: float = 300.0, parallel: int = 4, token_ttl_s: int = 60) -> None:
        self._http = http
        self._slots = asyncio.Semaphore(parallel)
        self._url = str(url).rstrip("/")  # settings give an HttpUrl, which ends with "/"
        self._key = signing_key(signing_secret)
        self._issuer = issuer
        self._timeout = timeout_s
        self._ttl = token_ttl_s

    async def judge(self, body: dict[str, Any], task_id: str, timeline: Timeline | None = None, *,
                    timeout_s: float | None = None) -> dict[str, Any]:
        return await self._post("/judge", body, task_id, timeline, timeout_s)

    async def execute(self, body: dict[str, Any], task_id: str, timeline: Timeline | None = None, *,
                      timeout_s: float | None = None) -> dict[str, Any]:
        return await self._post("/execute", body, task_id, timeline, timeout_s)

    async def _post(self, path: str, body: dict[str, Any], task_id: str, timeline: Timeline | None,
                    timeout_s: float | None) -> dict[str, Any]:
        limit_s = self._timeout if timeout_s is None else timeout_s
        attempt = 0
        while True:
            sent = await self._send(path, body, task_id, timeline, limit_s)
            if isinstance(sent, httpx.Response) and sent.status_code not in RETRY_STATUSES:
                return _result(sent)
            if attempt == RETRIES:
                raise SandboxUnavailable(sent if isinstance(sent, str) else
                                         f"the sandbox is busy or not ready ({sent.status_code})")
            attempt += 1
            await asyncio.sleep(retry_after(sent) if isinstance(sent, httpx.Response) else DEFAULT_WAIT_S)

    async def _send(self, path: str, body: dict[str, Any], task_id: str, timeline: Timeline | None,
                    limit_s: float) -> httpx.Response | str:
        """One call: the answer, or why there was none when asking again may help. ``timeline`` counts the
        time the sandbox works on the call, not the wait for a free slot."""
        async with self._slots:
            # minted once a slot is free: a token that waited in the queue could expire before it is sent
            token = mint(self._key, issuer=self._issuer, task_id=f"{task_id}-{secrets.token_hex(4)}",
                         languages=(body.get("language", "python"),), ttl_s=self._ttl)
            try:
                with timeline.track("sandbox") if timeline else nullcontext():
                    return await self._http.post(f"{self._url}{path}", json=body, timeout=limit_s,
                                                 headers={"Authorization": f"Bearer {token}"})
            except httpx.TimeoutException:
                raise SandboxUnavailable(f"the sandbox did not answer within {limit_s:g} s") from None
            except httpx.TransportError as exc:  # refused, reset, closed before the answer
                return f"the sandbox is unreachable ({type(exc).__name__})"
            except httpx.HTTPError as exc:  # an answer that could not be read: not a network hiccup
                raise SandboxUnavailable(f"the sandbox's answer failed ({type(exc).__name__})") from None


def _result(response: httpx.Response) -> dict[str, Any]:
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


def retry_after(response: httpx.Response) -> float:
    """The answer's Retry-After in seconds, held to ``WAIT_S``."""
    try:
        return min(WAIT_S[1], max(WAIT_S[0], float(response.headers.get("retry-after", DEFAULT_WAIT_S))))
    except ValueError:
        return DEFAULT_WAIT_S
