"""Sends an admitted request to its backend and relays the answer: status and headers first, then the body
as it arrives. Streams pass through event by event; the proxy reads only what it needs for accounting.

The backend client is aiohttp rather than the httpx the services use elsewhere: on this hot path its C HTTP
parser and connection pool cost about half the CPU per request (measured with py-spy under bench-proxy)."""

from __future__ import annotations

import io
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import aiohttp
from prometheus_client import Histogram
from starlette.requests import Request
from starlette.responses import Response

from atlas_core.errors import error_response
from atlas_core.responses import EVENT_END, ClosingStreamingResponse
from atlas_core.schemas import KeyInfo, ModelEntry
from atlas_proxy.calls import Call
from atlas_proxy.metering import Meter, Settlement, arrival
from atlas_proxy.settings import Settings
from atlas_proxy.stats import ROUTES, ProxyMetrics

log = logging.getLogger("atlas.proxy")
# Not passed on from a backend's answer: hop-by-hop headers, and those the proxy sets itself (its request id
# middleware adds X-Request-Id, the same id the backend was given).
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "trailers", "transfer-encoding", "upgrade", "content-length", "content-encoding", "server", "date",
              "x-request-id"}
DONE = re.compile(rb"^data:\s*\[DONE\]\s*$", re.MULTILINE)
# A non-empty piece of generated text: an answer's, or a reasoning model's thinking (tokens it is billed for, and
# its first token is the first the client sees arrive).
PIECE = re.compile(rb'"(?:content|text|reasoning_content)"\s*:\s*"(?!")')
BACKENDS = {"llama": "llama-server", "embed": "embedding-server", "rag": "rag-api"}
LARGE_BODY = 1 << 20  # aiohttp warns that sending more as one bytes object blocks its loop: stream it instead


def payload(raw: bytes) -> bytes | io.BytesIO:
    return io.BytesIO(raw) if len(raw) > LARGE_BODY else raw


class Forwarder:
    def __init__(self, settings: Settings, http: aiohttp.ClientSession, meter: Meter, stats: ProxyMetrics) -> None:
        self._settings = settings
        self._http = http
        self.meter = meter
        self._stats = stats
        llama_key = settings.llama_api_key.get_secret_value()
        self._targets = {
            "llama": (settings.llama_url, llama_key),
            "embed": (settings.embed_url, llama_key),
            "rag": (settings.rag_url, settings.proxy_token.get_secret_value()),
        }

    async def forward(self, request: Request, path: str, call: Call, entry: ModelEntry, info: KeyInfo,
                      admission: str | None, reserved: int, extra_headers: dict[str, str]) -> Response:
        base, token = self._targets[entry.route]
        raw = call.upstream_body(entry.route, self._settings.proxy_default_max_tokens, entry.upstream)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                   "Accept-Encoding": "identity", "X-Request-Id": request.state.request_id}
        if entry.route == "rag":
            # rag-api never spends more on this solve than was reserved for it
            headers |= {"X-Atlas-User-Id": str(info.user_id), "X-Atlas-Key-Id": str(info.key_id),
                        "X-Atlas-Token-Cap": str(reserved)}
            if (project := request.headers.get("x-atlas-project")) is not None:
                # The client's project for model atlas (rag-api validates it and checks it is the user's)
                headers["X-Atlas-Project"] = project
        arrived, started = arrival(request)
        sent = time.perf_counter()
        backend = BACKENDS[entry.route]
        route = ROUTES[entry.route]

        def settlement(status: int, prompt: int = 0, completion: int = 0) -> Settlement:
            return Settlement(info, call.model, admission, reserved, status, prompt, completion, started, route,
                              arrived=arrived)

        async def failed(status: int, message: str, kind: str) -> Response:
            self._stats.upstream_errors.labels(backend, kind).inc()
            await self.meter.settle(settlement(status))
            return error_response(status, message, headers=extra_headers)

        # A backend that times out or breaks off is a dependency down, like one that refuses connections: 503 with
        # Retry-After. Only a backend's own 5xx answer (its bug) is a 502.
        waited = f"{self._settings.proxy_upstream_timeout_s:g}s"
        try:
            upstream = await self._http.post(f"{base}{path}", data=payload(raw), headers=headers)
        except TimeoutError:
            return await failed(503, f"{backend} did not answer within {waited} or no connection to it was free",
                                "timeout")
        except aiohttp.ClientError as exc:
            return await failed(503, f"{backend} is unavailable ({type(exc).__name__}); try again shortly",
                                "unavailable")
        request.state.upstream_s = time.perf_counter() - sent
        out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP} | extra_headers

        if upstream.status >= 400 or not call.stream:
            try:
                content = await upstream.read()
            except TimeoutError:
                return await failed(503, f"{backend} stopped answering for {waited}", "timeout")
            except aiohttp.ClientError as exc:
                return await failed(503, f"{backend} broke off its answer ({type(exc).__name__}); try again",
                                    "broke_off")
            finally:
                upstream.release()
            request.state.upstream_s = time.perf_counter() - sent
            if upstream.status >= 400:
                if upstream.status >= 500:
                    self._stats.upstream_errors.labels(backend, "status_5xx").inc()
                await self.meter.settle(settlement(upstream.status))
                retry = {"Retry-After": upstream.headers["retry-after"]} if "retry-after" in upstream.headers else {}
                return upstream_error(upstream.status, content, backend, extra_headers | retry)
            await self.meter.settle(settlement(upstream.status, *_usage(content)))
            return Response(content, status_code=upstream.status, headers=out_headers)

        timing = (self._stats.ttft.labels(call.model, route), self._stats.itl.labels(call.model, route), arrived)
        return ClosingStreamingResponse(self._relay(upstream, call, entry.route, settlement, timing),
                                        status_code=upstream.status, headers=out_headers)

    async def _relay(self, upstream: aiohttp.ClientResponse, call: Call, route: str,
                     settlement: Callable[..., Settlement], timing: tuple[Histogram, Histogram, float]
                     ) -> AsyncIterator[bytes]:
        """Event by event. The usage is settled before the client gets ``[DONE]``; rag-api's usage chunk, asked
        for on the client's behalf, is metered and not passed on unless the client asked for usage. Each event
        that carries generated text times the first token (from the request's arrival) and the gaps between."""
        ttft, itl, arrived = timing
        last_token = 0.0
        buffer, usage, pieces, last_data = b"", None, 0, b""
        status, finished, settled = upstream.status, False, False
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
                        prompt, completion = usage or _estimate(call, pieces)
                        await self.meter.settle(settlement(status, prompt, completion))
                        settled = True
                    elif b'"usage"' in event and (found := _event_usage(event)) is not None:
                        usage = found
                        if route == "rag" and not call.want_usage and _is_usage_chunk(event):
                            continue
                    elif event.startswith(b"data:"):
                        if PIECE.search(event) is not None:
                            now = time.perf_counter()
                            if pieces:
                                itl.observe(now - last_token)
                            else:
                                ttft.observe(now - arrived)
                            pieces, last_token = pieces + 1, now
                        last_data = event
                    out.append(event)
                if out:
                    yield b"".join(out)
            if buffer:
                yield buffer
            finished = True
        except (aiohttp.ClientError, TimeoutError) as exc:
            status = 502
            self._stats.upstream_errors.labels(BACKENDS[route], "broke_off").inc()
            log.warning("upstream stream broke off: %s", type(exc).__name__)
        finally:
            # The client may have gone (this generator is being cancelled): closing the backend connection
            # cancels the generation there. A finished answer only hands its connection back to the pool.
            if finished:
                upstream.release()
            else:
                upstream.close()
            if not settled:
                prompt, completion = usage or _estimate(call, pieces)
                # Neither finished nor broken by the backend: the client went away mid-answer.
                aborted = not finished and status != 502
                self.meter.settle_later(replace(settlement(status, prompt, completion), aborted=aborted))


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


def _is_usage_chunk(event: bytes) -> bool:
    """OpenAI's final usage-only chunk (no choices), as opposed to a solve's result event that carries usage."""
    try:
        data = _data(event) or {}
    except ValueError:
        return False
    return data.get("object") == "chat.completion.chunk" and not data.get("choices")


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


def upstream_error(status: int, content: bytes, backend: str, headers: dict[str, str]) -> Response:
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
    if status == 503:  # busy or not ready (a model still loading, every solve slot taken): it comes back
        message = body["error"].get("message") if isinstance(body, dict) and isinstance(body.get("error"), dict) \
            else None
        return error_response(503, f"{backend} is busy or not ready: {message}" if isinstance(message, str) else
                              f"{backend} is busy or not ready; try again shortly", headers=headers)
    if status >= 500 or status in (401, 403, 404):
        # A backend refusing the proxy's own credential or path is the platform's fault, not the client's.
        return error_response(502, f"{backend} failed to answer (status {status})", headers=headers)
    return error_response(status, f"{backend} refused the request (status {status})", headers=headers)
