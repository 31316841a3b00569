"""Several replicas of llama-server A behind one name: which ones there are, and which has a slot free.

In Kubernetes llama-server A runs as several pods behind a *headless* Service, whose DNS name resolves to every
ready pod. ``Upstreams`` turns the configured URL into endpoints (``discovery="none"``: the URL as it is;
``"dns"``: one endpoint per address the host resolves to, refreshed every few seconds) and sends each request
to the endpoint with the most free slots::

    pool = Upstreams(http, "http://llama-a.atlas.svc:8080", api_key, UpstreamConfig(discovery="dns"))
    lease = await pool.acquire()          # NoEndpoint when every endpoint is down
    try:
        response = await http.post(lease.url("/v1/completions"), headers=lease.headers, ...)
    finally:
        pool.release(lease, "ok")

Free slots come from native llama.cpp's ``GET /slots`` (one object per slot, ``is_processing`` true while it
works), polled at most every ``poll_interval_s``; between polls the requests this process started since the
poll are subtracted and the ones it finished that the poll saw busy are added back. llama-cpp-python has no
``/slots`` (nor ``/props`` with ``total_slots``): its slots are counted locally, ``fallback_slots`` each.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge

log = logging.getLogger("atlas.engine.upstreams")

Discovery = Literal["none", "dns"]
Outcome = Literal["ok", "error", "timeout", "unreachable", "unavailable", "cancelled"]
# (address, port) pairs the endpoints are built from; injectable so tests need no DNS server.
Resolver = Callable[[str, int], Awaitable[Sequence[tuple[str, int]]]]
Check = Callable[[], Awaitable[str | None]]

# Outcomes after which the endpoint is skipped for ``down_s``: nothing answered, or it said it cannot serve.
_MARKS_DOWN: frozenset[Outcome] = frozenset({"unreachable", "unavailable"})
_OUTCOMES: tuple[Outcome, ...] = ("ok", "error", "timeout", "unreachable", "unavailable", "cancelled")
SLOTLESS_REPROBE_S = 60.0  # a server without /slots is asked again now and then: it may have been replaced
HEALTH_TIMEOUT_S = 1.5  # under atlas_core.health.CHECK_TIMEOUT_S, so one slow replica cannot time out /readyz


class NoEndpoint(Exception):
    """No endpoint can take a request now; the message says why."""


@dataclass(frozen=True)
class UpstreamConfig:
    discovery: Discovery = "none"
    discovery_interval_s: float = 5.0
    poll_interval_s: float = 1.0
    poll_timeout_s: float = 1.0
    down_s: float = 3.0
    max_endpoints: int = 64  # bounds the metrics' label cardinality too
    fallback_slots: int = 1  # llama-cpp-python serves one request at a time


@dataclass(eq=False)
class Endpoint:
    """One replica. ``free`` is an estimate: the last poll corrected by what this process did since."""

    base: str
    label: str
    headers: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, Any] = field(default_factory=dict)
    slots_api: bool | None = None  # None: not asked yet
    total: int | None = None  # from /slots or /props; None: unknown (fallback_slots)
    polled_free: int | None = None
    polled_at: float = -math.inf
    epoch: int = 0  # polls so far: a lease started before the last poll was seen busy by it
    started_since_poll: int = 0
    freed_since_poll: int = 0
    in_flight: int = 0
    down_until: float = 0.0
    last_error: str | None = None

    def free(self, fallback: int) -> int:
        if self.slots_api and self.polled_free is not None:
            estimate = self.polled_free - self.started_since_poll + self.freed_since_poll
            return min(estimate, self.total if self.total is not None else estimate)
        return (self.total or fallback) - self.in_flight

    def is_down(self, now: float) -> bool:
        return self.down_until > now


@dataclass(eq=False)
class Lease:
    endpoint: Endpoint
    epoch: int

    def url(self, path: str) -> str:
        return f"{self.endpoint.base}{path}"

    @property
    def headers(self) -> dict[str, str]:
        return self.endpoint.headers

    @property
    def extensions(self) -> dict[str, Any]:
        return self.endpoint.extensions


class UpstreamMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter("atlas_llama_requests_total", "Requests to llama-server A by endpoint and outcome "
                                "(ok, error, timeout, unreachable, unavailable, cancelled)", ["endpoint", "outcome"],
                                registry=registry)
        self.free_slots = Gauge("atlas_llama_free_slots", "Free slots of each llama-server A endpoint, as this "
                                "process last estimated them", ["endpoint"], registry=registry)
        self.up = Gauge("atlas_llama_endpoint_up", "1 while an endpoint of llama-server A takes requests, 0 while "
                        "it is skipped after a failure", ["endpoint"], registry=registry)

    def forget(self, label: str) -> None:
        """Drop a vanished endpoint's series, so pods coming and going never pile up labels."""
        for metric in (self.free_slots, self.up):
            with suppress(KeyError):
                metric.remove(label)
        for outcome in _OUTCOMES:
            with suppress(KeyError):
                self.requests.remove(label, outcome)


async def resolve(host: str, port: int) -> list[tuple[str, int]]:
    """Every address ``host`` resolves to (A and AAAA), through the event loop's non-blocking getaddrinfo."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({(str(info[4][0]), port) for info in infos})


class Upstreams:
    def __init__(self, http: httpx.AsyncClient, url: str, api_key: str, config: UpstreamConfig | None = None, *,
                 registry: CollectorRegistry | None = None, resolver: Resolver = resolve) -> None:
        self._http = http
        self._auth = {"Authorization": f"Bearer {api_key}"}
        self.config = config or UpstreamConfig()
        self._metrics = UpstreamMetrics(registry) if registry is not None else None
        self._resolver = resolver
        parsed = httpx.URL(url)
        self._scheme, self._host, self._path = parsed.scheme, parsed.host, parsed.path.rstrip("/")
        self._port = parsed.port or (443 if parsed.scheme == "https" else 80)
        self._netloc = _host_port(self._host, parsed.port)
        self.endpoints: list[Endpoint] = []
        if self.config.discovery == "none":
            self._set_endpoints([Endpoint(base=url.rstrip("/"), label=_host_port(self._host, self._port))])
        self._resolved_at = -math.inf
        self._discovery_error: str | None = None
        self._lock = asyncio.Lock()  # one refresh at a time; concurrent pickers wait for it, not poll again
        self._turn = 0

    async def acquire(self, exclude: Collection[Endpoint] = ()) -> Lease:
        """The endpoint with the most free slots (ties: the fewest in flight from here, then in turn), counted
        in flight until ``release``. Raises NoEndpoint when every endpoint is excluded or down."""
        await self._refresh()
        now = time.monotonic()
        fallback = self.config.fallback_slots
        candidates = [e for e in self.endpoints if e not in exclude and not e.is_down(now)]
        if not candidates:
            raise NoEndpoint(self._why_none())
        start = self._turn % len(candidates)
        self._turn += 1
        rotated = candidates[start:] + candidates[:start]
        chosen = max(rotated, key=lambda e: (e.free(fallback), -e.in_flight))
        chosen.in_flight += 1
        chosen.started_since_poll += 1
        self._show(chosen)
        return Lease(chosen, chosen.epoch)

    def release(self, lease: Lease, outcome: Outcome, reason: str | None = None) -> None:
        endpoint = lease.endpoint
        endpoint.in_flight -= 1
        if lease.epoch == endpoint.epoch:
            endpoint.started_since_poll -= 1
        else:  # the last poll saw this request's slot busy: it is free again now
            endpoint.freed_since_poll += 1
        if outcome in _MARKS_DOWN:
            self._mark_down(endpoint, reason or outcome)
        if self._metrics is not None and endpoint in self.endpoints:
            self._metrics.requests.labels(endpoint.label, outcome).inc()
        self._show(endpoint)

    def ready_check(self) -> Check:
        """For ``/readyz``: passes while at least one endpoint answers ``GET /health`` with 2xx (native
        llama-server answers 503 while the model loads), with a warning naming the ones that do not."""

        async def check() -> str | None:
            async with self._lock:
                await self.discover()
            endpoints = list(self.endpoints)
            if not endpoints:
                raise RuntimeError(self._why_none())
            answers = await asyncio.gather(*(self._health(e) for e in endpoints))
            bad = [f"{e.label}: {why}" for e, why in zip(endpoints, answers, strict=True) if why]
            if len(bad) == len(endpoints):
                raise RuntimeError("no llama-server endpoint is healthy: " + "; ".join(bad[:4]))
            if bad:
                return f"{len(bad)} of {len(endpoints)} llama-server endpoints are not healthy: " + "; ".join(bad[:4])
            return None

        return check

    async def _health(self, endpoint: Endpoint) -> str | None:
        try:
            response = await self._http.get(f"{endpoint.base}/health", headers=endpoint.headers,
                                            extensions=endpoint.extensions, timeout=HEALTH_TIMEOUT_S)
        except httpx.HTTPError as exc:
            return type(exc).__name__
        return None if response.status_code // 100 == 2 else f"answered {response.status_code}"

    async def _refresh(self) -> None:
        if not self._due(time.monotonic()):
            return
        async with self._lock:
            now = time.monotonic()
            if not self._due(now):  # refreshed while this one waited for the lock
                return
            await self.discover()
            if len(self.endpoints) > 1:  # with one endpoint there is nothing to choose: no polling
                await asyncio.gather(*(self._poll(e) for e in self.endpoints if self._poll_due(e, now)))

    def _due(self, now: float) -> bool:
        if self.config.discovery == "dns" and now - self._resolved_at >= self.config.discovery_interval_s:
            return True
        return len(self.endpoints) > 1 and any(self._poll_due(e, now) for e in self.endpoints)

    def _poll_due(self, endpoint: Endpoint, now: float) -> bool:
        every = self.config.poll_interval_s if endpoint.slots_api is not False else SLOTLESS_REPROBE_S
        return not endpoint.is_down(now) and now - endpoint.polled_at >= every

    async def discover(self) -> None:
        """Resolve the name again when ``discovery_interval_s`` has passed (``discovery="dns"`` only)."""
        if self.config.discovery != "dns" or time.monotonic() - self._resolved_at < self.config.discovery_interval_s:
            return
        self._resolved_at = time.monotonic()
        try:
            async with asyncio.timeout(2.0):
                found = list(await self._resolver(self._host, self._port))
        except (OSError, TimeoutError) as exc:
            # A failed lookup keeps the endpoints known: DNS hiccups must not empty the pool. Gone pods then
            # fail their connections and are skipped.
            self._discovery_error = f"cannot resolve {self._host} ({type(exc).__name__}: {exc})"[:200]
            log.warning("llama-server discovery: %s; keeping %d endpoints", self._discovery_error,
                        len(self.endpoints))
            return
        self._discovery_error = None if found else f"{self._host} resolves to no address"
        if len(found) > self.config.max_endpoints:
            log.warning("llama-server discovery: %s resolves to %d addresses, using the first %d", self._host,
                        len(found), self.config.max_endpoints)
        wanted = {_host_port(host, port): (host, port) for host, port in sorted(found)[:self.config.max_endpoints]}
        known = {e.label: e for e in self.endpoints}
        if wanted.keys() == known.keys():
            return
        added, removed = wanted.keys() - known.keys(), known.keys() - wanted.keys()
        log.info("llama-server endpoints of %s: %d (added %s, removed %s)", self._host, len(wanted),
                 sorted(added) or "none", sorted(removed) or "none")
        self._set_endpoints([known.get(label) or self._endpoint(host, port) for label, (host, port) in wanted.items()])

    def _endpoint(self, address: str, port: int) -> Endpoint:
        label = _host_port(address, port)
        # The request goes to the address, but names the Service: the Host header a virtual host or proxy
        # expects, and for https the SNI name the certificate is checked against (it names the Service, not a pod).
        extensions: dict[str, Any] = {"sni_hostname": self._host} if self._scheme == "https" else {}
        return Endpoint(base=f"{self._scheme}://{label}{self._path}", label=label, headers={"Host": self._netloc},
                        extensions=extensions)

    def _set_endpoints(self, endpoints: list[Endpoint]) -> None:
        if self._metrics is not None:
            for gone in set(self.endpoints) - set(endpoints):
                self._metrics.forget(gone.label)
        self.endpoints = endpoints
        for endpoint in endpoints:
            self._show(endpoint)

    async def _poll(self, endpoint: Endpoint) -> None:
        """Read the endpoint's slots; a server that cannot answer (unreachable, 5xx) is marked down."""
        endpoint.polled_at = time.monotonic()
        try:
            response = await self._get(endpoint, "/slots")
            slots = _slots(response) if response.status_code == 200 else None
            if slots is not None:
                endpoint.slots_api, (endpoint.total, endpoint.polled_free) = True, slots
            elif response.status_code >= 500 and response.status_code != 501:
                self._mark_down(endpoint, f"/slots answered {response.status_code}")
                return
            else:  # llama-cpp-python (404), or llama-server --no-slots (501): count locally, by /props if it has it
                endpoint.slots_api, endpoint.polled_free = False, None
                props = await self._get(endpoint, "/props")
                endpoint.total = _total_slots(props) if props.status_code == 200 else None
        except httpx.HTTPError as exc:
            self._mark_down(endpoint, f"/slots: {type(exc).__name__}")
            return
        endpoint.epoch += 1
        endpoint.started_since_poll = endpoint.freed_since_poll = 0
        endpoint.down_until = 0.0
        self._show(endpoint)

    async def _get(self, endpoint: Endpoint, path: str) -> httpx.Response:
        return await self._http.get(f"{endpoint.base}{path}", headers=self._auth | endpoint.headers,
                                    extensions=endpoint.extensions, timeout=self.config.poll_timeout_s)

    def _mark_down(self, endpoint: Endpoint, reason: str) -> None:
        endpoint.down_until = time.monotonic() + self.config.down_s
        endpoint.last_error = reason
        log.warning("llama-server endpoint %s skipped for %gs: %s", endpoint.label, self.config.down_s, reason)
        self._show(endpoint)

    def _show(self, endpoint: Endpoint) -> None:
        if self._metrics is None or endpoint not in self.endpoints:
            return
        self._metrics.free_slots.labels(endpoint.label).set(endpoint.free(self.config.fallback_slots))
        self._metrics.up.labels(endpoint.label).set(0 if endpoint.is_down(time.monotonic()) else 1)

    def _why_none(self) -> str:
        if not self.endpoints:
            return self._discovery_error or f"no llama-server endpoint found for {self._host}"
        reasons = sorted({e.last_error for e in self.endpoints if e.last_error})
        return "every llama-server endpoint is down" + (f" ({'; '.join(reasons[:3])})" if reasons else "")


def _host_port(host: str, port: int | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port is None else f"{shown}:{port}"


def _slots(response: httpx.Response) -> tuple[int, int] | None:
    """``(total, free)`` from native llama.cpp's ``GET /slots``: a list with one object per slot."""
    try:
        slots = response.json()
    except ValueError:
        return None
    if not isinstance(slots, list) or not slots or not all(isinstance(s, dict) for s in slots):
        return None
    return len(slots), sum(1 for s in slots if s.get("is_processing") is False)


def _total_slots(response: httpx.Response) -> int | None:
    """``total_slots`` from native llama.cpp's ``GET /props`` (its ``--parallel``)."""
    try:
        total = response.json().get("total_slots")
    except (ValueError, AttributeError):
        return None
    return total if isinstance(total, int) and total > 0 else None
