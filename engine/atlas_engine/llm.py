"""The client of llama-server A: OpenAI-compatible chat and completion calls with a seed per candidate.

llama-cpp-python's server ignores ``n > 1``, so k candidates are k requests; ``parallel`` of them are in flight at
once (llama.cpp's own server with ``-np N`` batches them, llama-cpp-python queues them). Each request goes to the
replica of llama-server A with the most free slots (``atlas_engine.upstreams``). ``forward_chat`` and
``stream_chat`` pass a client's own chat request through (model ``atlas`` when it is not solving); a stream holds
its slot and its replica's lease until its last byte."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import httpx

from atlas_core.errors import Retryable
from atlas_core.http import json_object
from atlas_engine.timeline import Timeline
from atlas_engine.upstreams import Lease, NoEndpoint, Outcome, Upstreams

Message = dict[str, str]


class LLMUnavailable(Retryable):
    """llama-server A did not answer usably; the message says why (never a prompt)."""


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None
    seconds: float


# Statuses with which a server says it cannot serve at all (loading, overloaded, a gateway without a backend):
# the endpoint is skipped for a while. Any other failure (500 included) is the request's own.
_UNAVAILABLE = frozenset({502, 503, 504})


class LLMClient:
    """``upstreams`` chooses the replica of each request (default: ``url`` as it is); ``parallel`` caps this
    process's requests in flight, whatever the replicas' slots."""

    def __init__(self, http: httpx.AsyncClient, url: str, api_key: str, *, model: str | None = None,
                 timeout_s: float = 300.0, parallel: int = 1, upstreams: Upstreams | None = None) -> None:
        self._http = http
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._model = model
        self._timeout = timeout_s
        self._slots = asyncio.Semaphore(parallel)
        self.upstreams = upstreams or Upstreams(http, url, api_key)

    async def chat(self, messages: list[Message], *, temperature: float, seed: int | None, max_tokens: int,
                   stop: list[str] | None = None, timeline: Timeline | None = None) -> Generation:
        body: dict[str, Any] = {"messages": messages}
        return await self._call("/v1/chat/completions", body, temperature, seed, max_tokens, stop, timeline)

    async def complete(self, prompt: str, *, temperature: float, seed: int | None, max_tokens: int,
                       stop: list[str] | None = None, timeline: Timeline | None = None) -> Generation:
        return await self._call("/v1/completions", {"prompt": prompt}, temperature, seed, max_tokens, stop,
                                timeline)

    async def _call(self, path: str, body: dict[str, Any], temperature: float, seed: int | None, max_tokens: int,
                    stop: list[str] | None, timeline: Timeline | None) -> Generation:
        body = body | {"temperature": temperature, "max_tokens": max_tokens}
        if seed is not None:
            body["seed"] = seed
        if stop:
            body["stop"] = stop
        started = time.monotonic()
        data = await self._post(path, body, timeline)
        try:
            choice = data["choices"][0]
            text = choice["message"]["content"] if "message" in choice else choice["text"]
            usage = data.get("usage") or {}
        except (KeyError, IndexError, TypeError):
            raise LLMUnavailable("llama-server answered something that is not a completion") from None
        return Generation(text=text or "", prompt_tokens=int(usage.get("prompt_tokens") or 0),
                          completion_tokens=int(usage.get("completion_tokens") or 0),
                          finish_reason=choice.get("finish_reason"), seconds=time.monotonic() - started)

    async def forward_chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """A plain chat completion (the request is not a coding problem): the model's answer as it is."""
        return await self._post("/v1/chat/completions", body, None)

    async def stream_chat(self, body: dict[str, Any]) -> AsyncGenerator[bytes, None]:
        """A plain chat completion streamed: the server's SSE bytes as they arrive (not split into events).

        Raises LLMUnavailable before its first chunk when no replica takes the request (down, unreachable, or an
        answer other than 200), and after it when the stream breaks off or stalls for ``timeout_s``. The slot
        and the lease are held until the stream ends or the iterator is closed (``aclose``: the client left),
        which also closes the connection, so the server stops generating::

            chunks = llm.stream_chat({"messages": [...], "tools": [...]})
            try:
                async for chunk in chunks:
                    ...
            finally:
                await chunks.aclose()
        """
        body = body | {"stream": True}
        if self._model:
            body["model"] = self._model
        async with self._slots:
            lease, response = await self._open("/v1/chat/completions", body)
            outcome: Outcome = "cancelled"
            reason: str | None = None
            try:
                if response.status_code != 200:
                    outcome = "unavailable" if response.status_code in _UNAVAILABLE else "error"
                    reason = f"answered {response.status_code}"
                    raise LLMUnavailable(f"llama-server answered {response.status_code}")
                async for chunk in response.aiter_bytes():
                    yield chunk
                outcome = "ok"
            except httpx.TimeoutException:
                outcome = "timeout"
                raise LLMUnavailable(f"llama-server sent nothing for {self._timeout:g}s") from None
            except httpx.HTTPError as exc:  # broke off mid-answer: as in _send, no reason to skip the replica
                outcome = "error"
                raise LLMUnavailable(f"llama-server broke off its answer ({type(exc).__name__})") from None
            finally:
                await response.aclose()
                self.upstreams.release(lease, outcome, reason)

    async def _open(self, path: str, body: dict[str, Any]) -> tuple[Lease, httpx.Response]:
        """``_send`` for a stream: the response once its status and headers are in, its body unread; the
        caller releases the lease when the body is done."""
        failed: list[Lease] = []
        while True:
            lease = await self._acquire(failed)
            request = self._http.build_request("POST", lease.url(path), json=body,
                                               headers=self._headers | lease.headers, extensions=lease.extensions,
                                               timeout=self._timeout)
            try:
                return lease, await self._http.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                self.upstreams.release(lease, "unreachable", type(exc).__name__)
                failed.append(lease)
                if len(failed) < 2:
                    continue
                raise LLMUnavailable(f"llama-server is unreachable ({type(exc).__name__})") from None
            except httpx.TimeoutException:
                self.upstreams.release(lease, "timeout")
                raise LLMUnavailable(f"llama-server did not answer within {self._timeout:g}s") from None
            except httpx.HTTPError as exc:
                self.upstreams.release(lease, "error", type(exc).__name__)
                raise LLMUnavailable(f"llama-server is unreachable ({type(exc).__name__})") from None
            except BaseException:  # cancelled while connecting: the caller gave up first
                self.upstreams.release(lease, "cancelled")
                raise

    async def _acquire(self, failed: list[Lease]) -> Lease:
        """The freest endpoint but those that already failed this request to connect."""
        try:
            return await self.upstreams.acquire(exclude=[f.endpoint for f in failed])
        except NoEndpoint as exc:
            if failed:
                raise LLMUnavailable(f"llama-server is unreachable ({failed[-1].endpoint.last_error})") from None
            raise LLMUnavailable(str(exc)) from None

    async def _post(self, path: str, body: dict[str, Any], timeline: Timeline | None) -> dict[str, Any]:
        """One non-streaming request in a free slot; ``timeline`` counts its time in the model, not the wait
        for the slot."""
        body = body | {"stream": False}
        if self._model:
            body["model"] = self._model
        async with self._slots:
            with timeline.track("llm") if timeline else nullcontext():
                response = await self._send(path, body)
        if response.status_code != 200:
            raise LLMUnavailable(f"llama-server answered {response.status_code}")
        answer = json_object(response)
        if answer is None:
            raise LLMUnavailable("llama-server answered something that is not a completion")
        return answer

    async def _send(self, path: str, body: dict[str, Any]) -> httpx.Response:
        """The request on the freest endpoint; once more on another only when the first could not connect
        (nothing was sent). After a timeout or a broken answer the model may be generating it: never twice."""
        failed: list[Lease] = []
        while True:
            lease = await self._acquire(failed)
            outcome: Outcome = "cancelled"
            reason: str | None = None
            try:
                response = await self._http.post(lease.url(path), json=body, headers=self._headers | lease.headers,
                                                  extensions=lease.extensions, timeout=self._timeout)
                outcome = "ok" if response.status_code == 200 else "error"
                if response.status_code in _UNAVAILABLE:
                    outcome, reason = "unavailable", f"answered {response.status_code}"
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                outcome, reason = "unreachable", type(exc).__name__
                failed.append(lease)
                if len(failed) < 2:
                    continue
                raise LLMUnavailable(f"llama-server is unreachable ({reason})") from None
            except httpx.TimeoutException:
                outcome = "timeout"
                raise LLMUnavailable(f"llama-server did not answer within {self._timeout:g}s") from None
            except httpx.HTTPError as exc:
                # The connection broke mid-answer: a crashed server is refused its next connection and skipped
                # then; a stale keep-alive connection is no reason to skip a healthy one.
                outcome, reason = "error", type(exc).__name__
                raise LLMUnavailable(f"llama-server is unreachable ({reason})") from None
            finally:  # "cancelled" when the caller gave up first (a solve cancelled, a client gone)
                self.upstreams.release(lease, outcome, reason)
            return response
