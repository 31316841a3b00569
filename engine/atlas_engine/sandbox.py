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

Requests and answers are the sandbox's own wire models (``atlas_core.sandbox_api``), typed once for the service
and its clients; an answer that does not fit them is ``SandboxUnavailable``. Usage::

    sandbox = SandboxClient(http, "http://127.0.0.1:8020", secret, issuer="atlas-bench")
    request = JudgeRequest(mode="stdin", candidates=[ProgramIn(code=code)], tests=[TestCase(input="1\n")])
    judged = await sandbox.judge(request, task_id="lcb/1873_A", timeout_s=90)
"""

from __future__ import annotations

import asyncio
import secrets
from contextlib import nullcontext
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from atlas_core.capability import mint, signing_key
from atlas_core.errors import Retryable, Unrecoverable
from atlas_core.http import json_object
from atlas_core.sandbox_api import ExecuteRequest, ExecuteResponse, JudgeRequest, JudgeResponse
from atlas_engine.timeline import Timeline

RETRIES = 3
RETRY_STATUSES = frozenset({429, 503})
WAIT_S = (0.1, 2.0)  # the bounds put on a Retry-After: the sandbox asks for 1 s, a proxy in front may say more
DEFAULT_WAIT_S = 0.5  # no Retry-After (or an unreadable one), or no answer at all
Answer = TypeVar("Answer", bound=BaseModel)


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

    async def judge(self, request: JudgeRequest, task_id: str, timeline: Timeline | None = None, *,
                    timeout_s: float | None = None) -> JudgeResponse:
        data = await self._post("/judge", _body(request), task_id, timeline, timeout_s)
        return _answer(JudgeResponse, data)

    async def execute(self, request: ExecuteRequest, task_id: str, timeline: Timeline | None = None, *,
                      timeout_s: float | None = None) -> ExecuteResponse:
        data = await self._post("/execute", _body(request), task_id, timeline, timeout_s)
        return _answer(ExecuteResponse, data)

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


Request = TypeVar("Request", bound=BaseModel)


def sandbox_request(model: type[Request], **fields: Any) -> Request:
    """A request to the sandbox; what its limits refuse (code past its size bound, text that is not valid
    Unicode) is refused here, as the sandbox would, without a call."""
    try:
        return model(**fields)
    except ValidationError as exc:
        raise SandboxRefused(f"the sandbox would refuse this run: {exc.errors()[0]['msg']}") from None


def _body(request: BaseModel) -> dict[str, Any]:
    return request.model_dump(exclude_none=True)


def _answer(model: type[Answer], data: dict[str, Any]) -> Answer:
    try:
        return model.model_validate(data)
    except ValidationError:
        raise SandboxUnavailable("the sandbox answered something that is not a result") from None


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
