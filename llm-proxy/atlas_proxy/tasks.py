"""The task and project APIs through the proxy: each call authenticated, rate-limited and metered like any request
(a task's tokens are charged by the worker, attempt by attempt; a project call spends none), then relayed to rag-api
with the key's owner and their limits, which only the proxy's credential may assert.

Event streams are capped per user and per key (``max_streams``, 429 with Retry-After beyond), hold their slot while
open (refreshed every 20 s, so a crashed proxy's slots expire within a minute), and run on a connection pool of their
own with a pool-wait timeout: however many are open, ordinary requests still get connections."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator

import aiohttp
from starlette.requests import Request
from starlette.responses import Response

from atlas_core.errors import error_response
from atlas_core.ratelimit import STREAM_REFRESH_S, Limiter
from atlas_core.responses import ClosingStreamingResponse
from atlas_core.schemas import KeyInfo, TaskLimits
from atlas_proxy.calls import SOLVE_MODEL
from atlas_proxy.forward import HOP_BY_HOP, payload, upstream_error
from atlas_proxy.metering import Meter, Settlement, arrival
from atlas_proxy.stats import ProxyMetrics

log = logging.getLogger("atlas.proxy.tasks")


class TaskRelay:
    """Relays rag-api's per-user APIs (``/v1/tasks``, ``/v1/projects``): one instance serves both, each call
    metered under the route it names (``"tasks"`` or ``"projects"``, the dashboard's ``route`` label)."""

    def __init__(self, rag_url: str, token: str, http: aiohttp.ClientSession, streams: aiohttp.ClientSession,
                 limiter: Limiter, meter: Meter, stats: ProxyMetrics) -> None:
        self._base = rag_url
        self._token = token
        self._http = http
        self._streams = streams
        self._limiter = limiter
        self._meter = meter
        self._stats = stats

    def _headers(self, request: Request, info: KeyInfo, body: bytes) -> dict[str, str]:
        limits = TaskLimits(key_tokens_per_min=info.tokens_per_min, user_tokens_per_min=info.user_tokens_per_min,
                            max_queued_tasks=info.user_max_queued_tasks)
        headers = {"Authorization": f"Bearer {self._token}", "Accept-Encoding": "identity",
                   "X-Request-Id": request.state.request_id, "X-Atlas-User-Id": str(info.user_id),
                   "X-Atlas-Key-Id": str(info.key_id), "X-Atlas-Limits": limits.model_dump_json()}
        if body:
            headers["Content-Type"] = "application/json"
        if "last-event-id" in request.headers:
            headers["Last-Event-ID"] = request.headers["last-event-id"][:64]
        return headers

    async def relay(self, request: Request, body: bytes, info: KeyInfo, admission: str | None,
                    extra_headers: dict[str, str], route: str = "tasks") -> Response:
        """One task- or project-API call, answered as rag-api answers it; a task's event stream passes through as
        it comes. ``route`` is the label the call is metered under (stats.ROUTES' values)."""
        arrived, started = arrival(request)
        status = 502

        async def settle() -> None:
            await self._meter.settle(Settlement(info, SOLVE_MODEL, admission, 0, status, 0, 0, started, route,
                                                arrived=arrived))

        query = f"?{request.url.query}" if request.url.query else ""
        events = request.url.path.endswith("/events")
        stream_id = uuid.uuid4().hex
        if events:
            refused = await self._open_stream(info, stream_id, extra_headers)
            if refused is not None:
                status = 429
                await settle()
                return refused
        client = self._streams if events else self._http
        try:
            upstream = await client.request(request.method, f"{self._base}{request.url.path}{query}",
                                            data=payload(body) if body else None,
                                            headers=self._headers(request, info, body))
        except (TimeoutError, aiohttp.ClientError) as exc:
            if events:
                await self._limiter.close_stream(info, stream_id)
            status = 503
            self._stats.upstream_errors.labels("rag-api", "timeout" if isinstance(exc, TimeoutError)
                                               else "unavailable").inc()
            await settle()
            if isinstance(exc, TimeoutError):  # aiohttp's connect and pool-wait timeouts are TimeoutErrors
                return error_response(503, "rag-api did not answer in time, or every connection is busy; retry "
                                      "shortly", headers=extra_headers)
            return error_response(503, f"rag-api is unavailable ({type(exc).__name__}); try again shortly",
                                  headers=extra_headers)
        status = upstream.status
        out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP} | extra_headers
        if upstream.content_type != "text/event-stream" or upstream.status >= 400:
            if events:
                await self._limiter.close_stream(info, stream_id)
            try:
                content = await upstream.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                status = 503
                self._stats.upstream_errors.labels("rag-api", "broke_off").inc()
                await settle()
                return error_response(503, f"rag-api broke off its answer ({type(exc).__name__}); try again",
                                      headers=extra_headers)
            finally:
                upstream.release()
            await settle()
            if upstream.status >= 500:  # as the forwarder counts them: a busy or broken backend alike
                self._stats.upstream_errors.labels("rag-api", "status_5xx").inc()
            if upstream.status in (429, 503) and b'"error"' in content:
                # rag-api's own refusal (a full queue, Redis down): its message and Retry-After go to the client
                retry = {"Retry-After": upstream.headers["retry-after"]} if "retry-after" in upstream.headers else {}
                return Response(content, status_code=upstream.status, media_type="application/json",
                                headers=extra_headers | retry)
            if upstream.status >= 400:
                return upstream_error(upstream.status, content, "rag-api", extra_headers)
            return Response(content, status_code=upstream.status, headers=out_headers)
        await settle()
        return ClosingStreamingResponse(self._follow(upstream, info, stream_id), status_code=upstream.status,
                                        headers=out_headers)

    async def _open_stream(self, info: KeyInfo, stream_id: str, headers: dict[str, str]) -> Response | None:
        """None when the stream may open (its slot is held), else the 429 that refuses it."""
        refused = await self._limiter.open_stream(info, stream_id)
        if not refused:
            return None
        whose, cap = (("this user (shared by all their keys)", info.user_max_streams) if refused == 1
                      else ("this key", info.max_streams))
        self._stats.rejected("streams", "user" if refused == 1 else "key")
        return error_response(429, f"{whose} already holds {cap} open event streams, the most allowed; close one "
                              "or poll GET /v1/tasks/{id} instead", code="streams_exceeded",
                              headers=headers | {"Retry-After": "5"})

    async def _follow(self, upstream: aiohttp.ClientResponse, info: KeyInfo, stream_id: str
                      ) -> AsyncIterator[bytes]:
        async def keep() -> None:
            while True:
                await asyncio.sleep(STREAM_REFRESH_S)
                with contextlib.suppress(Exception):  # a missed refresh only shortens the slot's life
                    await self._limiter.refresh_stream(info, stream_id)

        refresher = asyncio.create_task(keep())
        finished = False
        try:
            async for chunk in upstream.content.iter_any():
                yield chunk
            finished = True
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("task event stream broke off: %s", type(exc).__name__)
        finally:
            refresher.cancel()
            if finished:
                upstream.release()
            else:
                upstream.close()
            with contextlib.suppress(Exception):  # the slot expires on its own if Redis is away now
                await self._limiter.close_stream(info, stream_id)
