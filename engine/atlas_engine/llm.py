"""The client of llama-server A: OpenAI-compatible chat and completion calls with a seed per candidate.

llama-cpp-python's server ignores ``n > 1``, so k candidates are k requests; ``parallel`` of them are in flight at
once (llama.cpp's own server with ``-np N`` batches them, llama-cpp-python queues them)."""

from __future__ import annotations

import asyncio
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import httpx

from atlas_core.errors import Retryable
from atlas_core.http import json_object
from atlas_engine.timeline import Timeline

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


class LLMClient:
    def __init__(self, http: httpx.AsyncClient, url: str, api_key: str, *, model: str | None = None,
                 timeout_s: float = 300.0, parallel: int = 1) -> None:
        self._http = http
        self._url = url
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._model = model
        self._timeout = timeout_s
        self._slots = asyncio.Semaphore(parallel)

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

    async def _post(self, path: str, body: dict[str, Any], timeline: Timeline | None) -> dict[str, Any]:
        """One non-streaming request in a free slot; ``timeline`` counts its time in the model, not the wait
        for the slot."""
        body = body | {"stream": False}
        if self._model:
            body["model"] = self._model
        async with self._slots:
            try:
                with timeline.track("llm") if timeline else nullcontext():
                    response = await self._http.post(f"{self._url}{path}", json=body, headers=self._headers,
                                                     timeout=self._timeout)
            except httpx.TimeoutException:
                raise LLMUnavailable(f"llama-server did not answer within {self._timeout:g}s") from None
            except httpx.HTTPError as exc:
                raise LLMUnavailable(f"llama-server is unreachable ({type(exc).__name__})") from None
        if response.status_code != 200:
            raise LLMUnavailable(f"llama-server answered {response.status_code}")
        answer = json_object(response)
        if answer is None:
            raise LLMUnavailable("llama-server answered something that is not a completion")
        return answer
