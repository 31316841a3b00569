"""Sends an admitted request to its backend and relays the answer: status and headers first, then the body
as it arrives. Streams pass through event by event; the proxy reads only what it needs for accounting.

The backend client is aiohttp rather than the httpx the services use elsewhere: on this hot path its C HTTP
parser and connection pool cost about half the CPU per request (measured with py-spy under bench-proxy)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anyio
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from atlas_core.errors import error_response
from atlas_core.schemas import USAGE_MAXLEN, USAGE_STREAM, KeyInfo, ModelEntry
from atlas_proxy.calls import Call
from atlas_proxy.limits import Limiter
from atlas_proxy.settings import Settings

log = logging.getLogger("atlas.proxy")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "trailers", "transfer-encoding", "upgrade", "content-length", "content-encoding", "server", "date"}
EVENT_END = re.compile(rb"\r?\n\r?\n")
DONE = re.compile(rb"^data:\s*\[DONE\]\s*$", re.MULTILINE)
PIECE = re.compile(rb'"(?:content|text)"\s*:\s*"(?!")')  # a non-empty piece of generated text
BACKENDS = {"llama": "llama-server", "embed": "embedding-server", "rag": "rag-api"}


class ClosingStreamingResponse(StreamingResponse):
    """Closes its body iterator whatever happens, so the relay's cleanup (closing the backend connection, freeing
    the key's slot, recording usage) never waits for the garbage collector after a client disconnects."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True):
                    await aclose()


class Forwarder:
    def __init__(self, settings: Settings, http: aiohttp.ClientSession, limiter: Limiter, redis: Redis) -> None:
        self._pending: set[asyncio.Task[None]] = set()
        self._settings = settings
        self._http = http
        self._limiter = limiter
        self._redis = redis
        llama_key = settings.llama_api_key.get_secret_value()
        self._targets = {
            "llama": (settings.llama_url, llama_key),
            "embed": (settings.embed_url, llama_key),
            "rag": (settings.rag_url, settings.service_token.get_secret_value()),
        }

    async def forward(self, request: Request, path: str, call: Call, entry: ModelEntry, info: KeyInfo,
                      admission: str | None, reserved: int, extra_headers: dict[str, str]) -> Response:
        base, token = self._targets[entry.route]
        raw = call.raw
        if entry.upstream != call.model:  # a renamed model: the backend knows its own name
            raw = json.dumps({**call.body, "model": entry.upstream}).encode()
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                   "Accept-Encoding": "identity", "X-Request-Id": request.state.request_id}
        if entry.route == "rag":
            headers |= {"X-Atlas-User-Id": str(info.user_id), "X-Atlas-Key-Id": str(info.key_id)}
        sent = time.perf_counter()
        backend = BACKENDS[entry.route]
        started = time.time()

        def failed(status: int, message: str) -> Response:
            self._account(info, call, admission, reserved, status, 0, 0, started)
            return error_response(status, message)

        waited = f"{self._settings.proxy_upstream_timeout_s:g}s"
        try:
            upstream = await self._http.post(f"{base}{path}", data=raw, headers=headers)
        except TimeoutError:
            return failed(504, f"{backend} did not answer within {waited}")
        except aiohttp.ClientError as exc:
            return failed(503, f"{backend} is unavailable ({type(exc).__name__}); try again shortly")
        request.state.upstream_s = time.perf_counter() - sent
        out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP} | extra_headers

        if upstream.status >= 400 or not call.stream:
            try:
                content = await upstream.read()
            except TimeoutError:
                return failed(504, f"{backend} stopped answering for {waited}")
            except aiohttp.ClientError as exc:
                return failed(502, f"{backend} broke off its answer ({type(exc).__name__})")
            finally:
                upstream.release()
            request.state.upstream_s = time.perf_counter() - sent
            if upstream.status >= 400:
                self._account(info, call, admission, reserved, upstream.status, 0, 0, started)
                return _upstream_error(upstream.status, content, backend, extra_headers)
            prompt, completion = _usage(content)
            self._account(info, call, admission, reserved, upstream.status, prompt, completion, started)
            return Response(content, status_code=upstream.status, headers=out_headers)

        return ClosingStreamingResponse(self._relay(upstream, call, info, admission, reserved, started),
                                        status_code=upstream.status, headers=out_headers)

    async def relay(self, request: Request, body: bytes, info: KeyInfo, extra_headers: dict[str, str]) -> Response:
        """A task-API call to rag-api as it is (method, path, query, body), answered as rag-api answers it;
        the event stream passes through as it comes. Tasks meter their tokens when they finish (the worker
        writes the usage), so nothing is counted here."""
        base, token = self._targets["rag"]
        headers = {"Authorization": f"Bearer {token}", "Accept-Encoding": "identity",
                   "X-Request-Id": request.state.request_id, "X-Atlas-User-Id": str(info.user_id),
                   "X-Atlas-Key-Id": str(info.key_id)}
        if body:
            headers["Content-Type"] = "application/json"
        if "last-event-id" in request.headers:
            headers["Last-Event-ID"] = request.headers["last-event-id"][:64]
        query = f"?{request.url.query}" if request.url.query else ""
        try:
            upstream = await self._http.request(request.method, f"{base}{request.url.path}{query}", data=body or None,
                                                headers=headers)
        except TimeoutError:
            return error_response(504, "rag-api did not answer in time")
        except aiohttp.ClientError as exc:
            return error_response(503, f"rag-api is unavailable ({type(exc).__name__}); try again shortly")
        out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP} | extra_headers
        if upstream.content_type != "text/event-stream" or upstream.status >= 400:
            try:
                content = await upstream.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                return error_response(502, f"rag-api broke off its answer ({type(exc).__name__})")
            finally:
                upstream.release()
            if upstream.status in (429, 503) and b'"error"' in content:
                # rag-api's own refusal (a full queue, Redis down): its message and Retry-After go to the client
                retry = {"Retry-After": upstream.headers["retry-after"]} if "retry-after" in upstream.headers else {}
                return Response(content, status_code=upstream.status, media_type="application/json",
                                headers=extra_headers | retry)
            if upstream.status >= 400:
                return _upstream_error(upstream.status, content, "rag-api", extra_headers)
            return Response(content, status_code=upstream.status, headers=out_headers)

        async def events() -> AsyncIterator[bytes]:
            finished = False
            try:
                async for chunk in upstream.content.iter_any():
                    yield chunk
                finished = True
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("task event stream broke off: %s", type(exc).__name__)
            finally:
                if finished:
                    upstream.release()
                else:
                    upstream.close()

        return ClosingStreamingResponse(events(), status_code=upstream.status, headers=out_headers)

    async def _relay(self, upstream: aiohttp.ClientResponse, call: Call, info: KeyInfo, admission: str | None,
                     reserved: int, started: float) -> AsyncIterator[bytes]:
        buffer, usage, pieces, last_data = b"", None, 0, b""
        status, finished = upstream.status, False
        try:
            async for chunk in upstream.content.iter_any():
                buffer += chunk
                out = []
                while (end := EVENT_END.search(buffer)) is not None:
                    event, buffer = buffer[: end.end()], buffer[end.end():]
                    if DONE.search(event):
                        if call.want_usage and usage is None:  # the backend did not count: say what we saw
                            usage = _estimate(call, pieces)
                            out.append(_usage_event(last_data, usage))
                    elif b'"usage"' in event and (found := _event_usage(event)) is not None:
                        usage = found
                    elif event.startswith(b"data:"):
                        pieces += PIECE.search(event) is not None
                        last_data = event
                    out.append(event)
                if out:
                    yield b"".join(out)
            if buffer:
                yield buffer
            finished = True
        except (aiohttp.ClientError, TimeoutError) as exc:
            status = 502
            log.warning("upstream stream broke off: %s", type(exc).__name__)
        finally:
            # The client may have gone (this generator is being cancelled): closing the backend connection
            # cancels the generation there. A finished answer only hands its connection back to the pool. Nothing
            # here awaits, so a cancelled task still gets through it; the settlement runs as its own task.
            if finished:
                upstream.release()
            else:
                upstream.close()
            prompt, completion = usage or _estimate(call, pieces)
            self._account(info, call, admission, reserved, status, prompt, completion, started)

    def _account(self, info: KeyInfo, call: Call, admission: str | None, reserved: int, status: int,
                       prompt: int, completion: int, started: float) -> None:
        """Settle a finished request off the response path: the client does not wait for this round trip."""
        task = asyncio.create_task(self._settle(info, call, admission, reserved, status, prompt, completion,
                                                started))
        self._pending.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        """Wait for the settlements still in flight (at shutdown)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def _settle(self, info: KeyInfo, call: Call, admission: str | None, reserved: int, status: int,
                      prompt: int, completion: int, started: float) -> None:
        """Free the concurrency slot, reconcile reserved tokens and log usage, in one round trip."""
        usage = {"ts": started, "key_id": info.key_id, "user_id": info.user_id, "model": call.model,
                 "status": status, "prompt_tokens": prompt, "completion_tokens": completion,
                 "latency_ms": round((time.time() - started) * 1000, 1)}
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                if admission is not None:
                    self._limiter.finish(pipe, info, admission, reserved, prompt + completion)
                pipe.xadd(USAGE_STREAM, usage, maxlen=USAGE_MAXLEN, approximate=True)  # type: ignore[arg-type]
                await pipe.execute()
        except NoScriptError:  # Redis restarted and lost the script (the usage entry went in): reload, retry
            try:
                await self._limiter.reload()
                async with self._redis.pipeline(transaction=False) as pipe:
                    self._limiter.finish(pipe, info, admission or "", reserved, prompt + completion)
                    await pipe.execute()
            except RedisError as exc:
                log.warning("could not release limits: %s", exc)
        except Exception as exc:  # a background task: whatever went wrong is logged, never lost silently
            log.warning("could not record usage or release limits: %s", exc)


def _usage(content: bytes) -> tuple[int, int]:
    try:
        usage = json.loads(content).get("usage") or {}
        return int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
    except (ValueError, AttributeError, TypeError):
        return 0, 0


def _data(event: bytes) -> Any:
    for line in event.splitlines():
        if line.startswith(b"data:"):
            return json.loads(line[5:])
    return None


def _event_usage(event: bytes) -> tuple[int, int] | None:
    try:
        usage = (_data(event) or {}).get("usage")
        if not usage:
            return None
        return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    except (ValueError, AttributeError, TypeError):
        return None


def _estimate(call: Call, pieces: int) -> tuple[int, int]:
    """Prompt characters / 4, and one token per streamed piece (llama.cpp streams a token per event)."""
    return max(1, call.prompt_chars // 4), pieces


def _usage_event(last: bytes, usage: tuple[int, int]) -> bytes:
    """The final usage chunk OpenAI sends for ``stream_options.include_usage``, when the backend does not."""
    try:
        template = _data(last) or {}
    except ValueError:
        template = {}
    chunk = {"id": template.get("id", "chatcmpl-atlas"), "object": template.get("object", "chat.completion.chunk"),
             "created": template.get("created", int(time.time())), "model": template.get("model", ""),
             "choices": [], "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1],
                                      "total_tokens": usage[0] + usage[1]}}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def _upstream_error(status: int, content: bytes, backend: str, headers: dict[str, str]) -> Response:
    """A backend's error in OpenAI's shape: its own message when it has one, never its internals."""
    try:
        body = json.loads(content)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict) and status < 500:
        return Response(content, status_code=status, media_type="application/json", headers=headers)
    detail = body.get("detail") if isinstance(body, dict) else None
    if status == 422 and isinstance(detail, list) and detail and isinstance(detail[0], dict):
        first = detail[0]
        where = ".".join(str(p) for p in first.get("loc", []) if p != "body")
        return error_response(400, f"invalid value for '{where}': {first.get('msg', 'invalid')}", param=where,
                              headers=headers)
    if status >= 500 or status in (401, 403, 404):
        # A backend refusing the proxy's own credential or path is the platform's fault, not the client's.
        return error_response(502, f"{backend} failed to answer (status {status})", headers=headers)
    return error_response(status, f"{backend} refused the request (status {status})", headers=headers)
