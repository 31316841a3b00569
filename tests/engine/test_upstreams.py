"""Several llama-server A replicas behind one name: real uvicorn replicas on 127.0.0.1, each on its own port, found
through an injected resolver (the name is what a headless Service would resolve to every pod)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import ExitStack
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry

from atlas_core.settings import load_settings
from atlas_engine import LLMClient, LLMUnavailable, build_engine
from atlas_engine.settings import EngineSettings
from atlas_engine.upstreams import NoEndpoint, UpstreamConfig, Upstreams, resolve
from tests.conftest import LLAMA_KEY, SANDBOX_SIGNING, ServerThread, free_port
from tests.rag.fake_llm import fake, fake_llm

T = TypeVar("T")
NAME = "http://llama-a.test:8080"
CHAT = [{"role": "user", "content": "hi"}]


def replica(slots: list[bool] | None) -> ServerThread:
    """The scripted llama-server with native llama.cpp's ``GET /slots`` (``is_processing`` per slot), or, with
    ``slots`` None, like llama-cpp-python: no /slots, no /props. ``state.hosts`` records each Host header."""
    app = fake_llm(LLAMA_KEY)
    app.state.slots = slots
    app.state.hosts = []
    app.state.script = lambda body: "hello"

    @app.middleware("http")
    async def record_host(request: Request, call_next: Any) -> Any:
        app.state.hosts.append(request.headers.get("host"))
        return await call_next(request)

    @app.get("/slots")
    async def get_slots(request: Request) -> Any:
        if request.headers.get("authorization") != f"Bearer {LLAMA_KEY}":
            return JSONResponse({"error": {"message": "bad key"}}, 401)
        if app.state.slots is None:
            return JSONResponse({"detail": "Not Found"}, 404)
        if app.state.down:
            return JSONResponse({"error": {"message": "Loading model"}}, 503)
        return [{"id": i, "id_task": -1, "n_ctx": 4096, "is_processing": busy}
                for i, busy in enumerate(app.state.slots)]

    return ServerThread(app)


@pytest.fixture
def replicas() -> Iterator[Callable[..., list[ServerThread]]]:
    with ExitStack() as stack:
        def start(*slots: list[bool] | None) -> list[ServerThread]:
            return [stack.enter_context(replica(s)) for s in slots]

        yield start


def label(port: int) -> str:
    return f"127.0.0.1:{port}"


def pool(http: httpx.AsyncClient, ports: Sequence[int], registry: CollectorRegistry | None = None,
         url: str = NAME, **config: Any) -> Upstreams:
    async def resolver(host: str, port: int) -> list[tuple[str, int]]:
        assert (host, port) == (httpx.URL(url).host, httpx.URL(url).port)
        return [("127.0.0.1", p) for p in ports]

    return Upstreams(http, url, LLAMA_KEY, UpstreamConfig(discovery="dns", **config), registry=registry,
                     resolver=resolver)


def run(work: Callable[[httpx.AsyncClient], Awaitable[T]], **client: Any) -> T:
    async def main() -> T:
        async with httpx.AsyncClient(**client) as http:
            return await work(http)

    return asyncio.run(main())


def chat(llm: LLMClient) -> Awaitable[Any]:
    return llm.chat(CHAT, temperature=0.0, seed=1, max_tokens=8)


def test_requests_go_to_the_replica_with_the_most_free_slots(replicas: Any) -> None:
    busy, free = replicas([True, True, True, False], [False, False, False, True])
    registry = CollectorRegistry()

    async def work(http: httpx.AsyncClient) -> None:
        llm = LLMClient(http, NAME, LLAMA_KEY, upstreams=pool(http, [busy.port, free.port], registry))
        for _ in range(4):
            assert (await chat(llm)).text == "hello"

    run(work)
    assert len(fake(free).requests) == 4 and fake(busy).requests == []
    # the pod is addressed by its IP but sees the Service's name, as through the Service
    assert set(fake(free).hosts) == {"llama-a.test:8080"}
    assert registry.get_sample_value("atlas_llama_requests_total", {"endpoint": label(free.port), "outcome": "ok"}) == 4
    assert registry.get_sample_value("atlas_llama_free_slots", {"endpoint": label(free.port)}) == 3
    assert registry.get_sample_value("atlas_llama_free_slots", {"endpoint": label(busy.port)}) == 1
    assert registry.get_sample_value("atlas_llama_endpoint_up", {"endpoint": label(busy.port)}) == 1


def test_a_replica_with_every_slot_busy_gets_nothing(replicas: Any) -> None:
    full, idle = replicas([True, True], [False])

    async def work(http: httpx.AsyncClient) -> None:
        llm = LLMClient(http, NAME, LLAMA_KEY, upstreams=pool(http, [full.port, idle.port]))
        for _ in range(3):
            await chat(llm)

    run(work)
    assert fake(full).requests == [] and len(fake(idle).requests) == 3


def test_requests_in_flight_count_against_the_slots_until_the_next_poll(replicas: Any) -> None:
    a, b = replicas([True, False], [True, False])  # one free slot each
    for server in (a, b):
        fake(server).script = lambda body: ("hello", 0.3)

    async def work(http: httpx.AsyncClient) -> None:
        llm = LLMClient(http, NAME, LLAMA_KEY, parallel=2, upstreams=pool(http, [a.port, b.port], poll_interval_s=60))
        await asyncio.gather(chat(llm), chat(llm))

    run(work)
    assert len(fake(a).requests) == 1 and len(fake(b).requests) == 1


def test_llama_cpp_python_replicas_are_counted_locally(replicas: Any) -> None:
    a, b = replicas(None, None)  # no /slots, no /props: one slot each, counted here
    for server in (a, b):
        fake(server).script = lambda body: ("hello", 0.3)

    async def work(http: httpx.AsyncClient) -> list[str]:
        upstreams = pool(http, [a.port, b.port])
        llm = LLMClient(http, NAME, LLAMA_KEY, parallel=2, upstreams=upstreams)
        await asyncio.gather(chat(llm), chat(llm))
        return [str(e.slots_api) for e in upstreams.endpoints]

    assert run(work) == ["False", "False"]
    assert len(fake(a).requests) == 1 and len(fake(b).requests) == 1


def test_a_replica_that_refuses_connections_is_skipped(replicas: Any) -> None:
    (good,) = replicas([False])
    closed = free_port()
    registry = CollectorRegistry()

    async def work(http: httpx.AsyncClient) -> None:
        llm = LLMClient(http, NAME, LLAMA_KEY, upstreams=pool(http, [closed, good.port], registry))
        for _ in range(2):
            await chat(llm)

    run(work)
    assert len(fake(good).requests) == 2
    assert registry.get_sample_value("atlas_llama_endpoint_up", {"endpoint": label(closed)}) == 0


def test_a_request_that_could_not_connect_is_sent_once_to_another_replica(replicas: Any) -> None:
    dying, other = replicas([False, False, False], [False])
    registry = CollectorRegistry()

    async def work(http: httpx.AsyncClient) -> None:
        upstreams = pool(http, [dying.port, other.port], registry, poll_interval_s=60)
        llm = LLMClient(http, NAME, LLAMA_KEY, upstreams=upstreams)
        await chat(llm)  # to the freer one
        await asyncio.to_thread(dying.__exit__, None, None, None)
        await chat(llm)  # the freer one refuses the connection: nothing was sent, so the other gets it
        with pytest.raises(LLMUnavailable, match="unreachable"):  # no third replica to try
            await asyncio.to_thread(other.__exit__, None, None, None)
            await chat(llm)

    # no keep-alive: a stopped server must refuse the next connection, not break a pooled one
    run(work, limits=httpx.Limits(max_keepalive_connections=0))
    assert len(fake(dying).requests) == 1 and len(fake(other).requests) == 1
    sample = registry.get_sample_value
    assert sample("atlas_llama_requests_total", {"endpoint": label(dying.port), "outcome": "unreachable"}) == 1
    assert sample("atlas_llama_requests_total", {"endpoint": label(other.port), "outcome": "ok"}) == 1
    assert sample("atlas_llama_endpoint_up", {"endpoint": label(dying.port)}) == 0


def test_a_timeout_is_never_sent_twice(replicas: Any) -> None:
    slow, other = replicas([False, False], [False])
    fake(slow).script = lambda body: ("late", 3.0)

    async def work(http: httpx.AsyncClient) -> Upstreams:
        upstreams = pool(http, [slow.port, other.port])
        llm = LLMClient(http, NAME, LLAMA_KEY, timeout_s=0.5, upstreams=upstreams)
        with pytest.raises(LLMUnavailable, match="did not answer within"):
            await chat(llm)
        return upstreams

    upstreams = run(work)
    assert len(fake(slow).requests) == 1 and fake(other).requests == []
    assert not any(e.last_error for e in upstreams.endpoints)  # slow is not broken: not skipped


def test_a_loading_server_is_skipped_then_every_replica_down_is_unavailable(replicas: Any) -> None:
    (server,) = replicas([False])
    fake(server).down = True  # native llama-server answers 503 while it loads the model

    async def work(http: httpx.AsyncClient) -> None:
        llm = LLMClient(http, server.url, LLAMA_KEY)  # discovery none: the URL as it is, as today
        with pytest.raises(LLMUnavailable, match="answered 503"):
            await chat(llm)
        with pytest.raises(LLMUnavailable, match="every llama-server endpoint is down"):
            await chat(llm)  # skipped for down_s: not even sent

    run(work)
    assert fake(server).hosts.count(f"127.0.0.1:{server.port}") == 1


def test_a_replica_answering_503_to_slots_is_skipped(replicas: Any) -> None:
    loading, ready = replicas([False, False], [False])
    fake(loading).down = True

    async def work(http: httpx.AsyncClient) -> None:
        llm = LLMClient(http, NAME, LLAMA_KEY, upstreams=pool(http, [loading.port, ready.port]))
        await chat(llm)

    run(work)
    assert len(fake(ready).requests) == 1 and fake(loading).hosts == ["llama-a.test:8080"]  # its /slots only


def test_dns_discovery_follows_the_name_with_a_bounded_endpoint_count() -> None:
    answers: list[list[tuple[str, int]] | OSError] = [
        [("10.0.0.2", 8080), ("10.0.0.1", 8080), ("fd00::1", 8080)],
        OSError("temporary failure in name resolution"),
        [("10.0.0.3", 8080), ("10.0.0.1", 8080)],
    ]

    async def resolver(host: str, port: int) -> list[tuple[str, int]]:
        answer = answers.pop(0)
        if isinstance(answer, OSError):
            raise answer
        return answer

    registry = CollectorRegistry()

    async def work(http: httpx.AsyncClient) -> list[list[str]]:
        upstreams = Upstreams(http, "https://llama-a.test:8080/base/", LLAMA_KEY,
                              UpstreamConfig(discovery="dns", discovery_interval_s=0, max_endpoints=2),
                              registry=registry, resolver=resolver)
        seen = []
        for _ in range(3):
            await upstreams.discover()
            seen.append([e.base for e in upstreams.endpoints])
        first = upstreams.endpoints[0]
        assert first.headers == {"Host": "llama-a.test:8080"} and first.extensions == {"sni_hostname": "llama-a.test"}
        return seen

    assert run(work) == [
        ["https://10.0.0.1:8080/base", "https://10.0.0.2:8080/base"],  # capped at 2, in address order
        ["https://10.0.0.1:8080/base", "https://10.0.0.2:8080/base"],  # a failed lookup keeps what was known
        ["https://10.0.0.1:8080/base", "https://10.0.0.3:8080/base"],
    ]
    # the vanished pod's series go with it
    assert registry.get_sample_value("atlas_llama_endpoint_up", {"endpoint": "10.0.0.2:8080"}) is None
    assert registry.get_sample_value("atlas_llama_endpoint_up", {"endpoint": "10.0.0.3:8080"}) == 1


def test_a_name_that_never_resolved_is_unavailable() -> None:
    async def resolver(host: str, port: int) -> list[tuple[str, int]]:
        raise OSError("Name or service not known")

    async def work(http: httpx.AsyncClient) -> None:
        upstreams = Upstreams(http, NAME, LLAMA_KEY, UpstreamConfig(discovery="dns"), resolver=resolver)
        with pytest.raises(NoEndpoint, match=r"cannot resolve llama-a\.test"):
            await upstreams.acquire()
        with pytest.raises(LLMUnavailable, match=r"cannot resolve llama-a\.test"):
            await chat(LLMClient(http, NAME, LLAMA_KEY, upstreams=upstreams))

    run(work)


def test_the_default_resolver_finds_every_address_of_a_name() -> None:
    found = asyncio.run(resolve("localhost", 8080))
    assert ("127.0.0.1", 8080) in found and all(port == 8080 for _, port in found)
    assert asyncio.run(resolve("127.0.0.1", 80)) == [("127.0.0.1", 80)]


def test_ready_while_one_replica_is_healthy(replicas: Any) -> None:
    (good,) = replicas([False])
    closed = free_port()

    async def work(http: httpx.AsyncClient) -> tuple[str | None, str]:
        warning = await pool(http, [closed, good.port]).ready_check()()
        with pytest.raises(RuntimeError) as refused:
            await pool(http, [closed]).ready_check()()
        return warning, str(refused.value)

    warning, reason = run(work)
    assert warning is not None and warning.startswith("1 of 2 llama-server endpoints are not healthy")
    assert reason.startswith("no llama-server endpoint is healthy") and "ConnectError" in reason


def test_build_engine_reads_the_discovery_settings() -> None:
    settings = load_settings(EngineSettings, read_conf_file=False, environ={
        "ATLAS_PORT": "8001", "ATLAS_HOST": "127.0.0.1", "ATLAS_METRICS_TOKEN": "m" * 40,
        "ATLAS_LLAMA_API_KEY": LLAMA_KEY, "ATLAS_SANDBOX_SIGNING_KEY": SANDBOX_SIGNING,
        "ATLAS_LLAMA_DISCOVERY": "dns", "ATLAS_LLAMA_SLOTS_POLL_S": "2", "ATLAS_LLAMA_DOWN_S": "7"})

    async def work(http: httpx.AsyncClient) -> UpstreamConfig:
        return build_engine(http, settings, "test", registry=CollectorRegistry()).llm.upstreams.config

    config = run(work)
    assert (config.discovery, config.poll_interval_s, config.down_s) == ("dns", 2.0, 7.0)
