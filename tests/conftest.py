"""Shared fixtures: a real redis-server the suite starts itself on a free port (never a Redis it did not start)."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from atlas_cli.plan import redis_binary
from atlas_core.capability import public_key_text

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RedisServer:
    port: int
    password: str

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, password=self.password)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    directory = tmp_path_factory.mktemp("redis")
    server = RedisServer(port=free_port(), password=secrets.token_urlsafe(32))
    proc = subprocess.Popen(
        [redis_binary(), "--port", str(server.port), "--bind", "127.0.0.1", "--dir", str(directory),
         "--save", "", "--appendonly", "no", "--requirepass", server.password],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with server.client() as client:
                client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise
            time.sleep(0.05)
    yield server
    proc.terminate()
    proc.wait(timeout=10)


METRICS_TOKEN = "m" * 8 + secrets.token_urlsafe(32)  # /metrics and /readyz details on every service
PROXY_TOKEN = "p" * 8 + secrets.token_urlsafe(32)  # llm-proxy's credential at the portal and rag-api
RECOVERY_TOKEN = "r" * 8 + secrets.token_urlsafe(32)  # the host CLI's bootstrap and recovery credential
LLAMA_KEY = "k" * 8 + secrets.token_urlsafe(32)
SANDBOX_SIGNING = "s" * 8 + secrets.token_urlsafe(32)


@pytest.fixture
def service_env(redis_server: RedisServer, tmp_path: Path) -> dict[str, str]:
    """Keys a service needs to start against the test Redis (emptied first: tests share the server);
    dependencies point at closed ports."""
    with redis_server.client() as client:
        client.flushdb()
    return {
        "ATLAS_METRICS_TOKEN": METRICS_TOKEN,
        "ATLAS_PROXY_TOKEN": PROXY_TOKEN,
        "ATLAS_RECOVERY_TOKEN": RECOVERY_TOKEN,
        "ATLAS_LLAMA_API_KEY": LLAMA_KEY,
        "ATLAS_JWT_SECRET": "j" * 8 + secrets.token_urlsafe(32),
        "ATLAS_KEY_HASH_SECRET": "h" * 8 + secrets.token_urlsafe(32),
        "ATLAS_SANDBOX_SIGNING_KEY": SANDBOX_SIGNING,
        "ATLAS_SANDBOX_VERIFY_KEY": public_key_text(SANDBOX_SIGNING),
        "ATLAS_REDIS_URL": redis_server.url,
        "ATLAS_REDIS_PASSWORD": redis_server.password,
        "ATLAS_STATE_DIR": str(tmp_path / "state"),
        "ATLAS_LLAMA_URL": f"http://127.0.0.1:{free_port()}",
        "ATLAS_EMBED_URL": f"http://127.0.0.1:{free_port()}",
        "ATLAS_SANDBOX_URL": f"http://127.0.0.1:{free_port()}",
        "ATLAS_PORTAL_URL": f"http://127.0.0.1:{free_port()}",
        "ATLAS_RAG_URL": f"http://127.0.0.1:{free_port()}",
    }


PORT_KEYS = [
    "ATLAS_REDIS_PORT", "ATLAS_LLAMA_PORT", "ATLAS_EMBED_PORT", "ATLAS_SANDBOX_PORT", "ATLAS_PORTAL_PORT",
    "ATLAS_RAG_PORT", "ATLAS_PROXY_PORT", "ATLAS_WORKER_PORT", "ATLAS_DASHBOARD_PORT",
]


@pytest.fixture
def platform_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A whole platform's keys on free ports with a fresh state directory, set in this process's environment
    (for in-process calls) and returned (for subprocesses). The working directory has no atlas.conf."""
    env = {key: str(free_port()) for key in PORT_KEYS}
    env["ATLAS_STATE_DIR"] = str(tmp_path / "state")
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("ATLAS_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


class ServerThread:
    """A real uvicorn server on 127.0.0.1 in a background thread (streaming behaviour needs real sockets)."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        import uvicorn

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="on", log_config=None))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on port {self.port} did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture(scope="session")
def sandbox_url(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real sandbox service for the whole session (rag-api's and the task-worker's tests judge in it)."""
    from atlas_core.settings import load_settings
    from atlas_sandbox.app import create_app as sandbox_app
    from atlas_sandbox.settings import Settings as SandboxSettings
    from tests.sandbox.conftest import sandbox_env

    settings = load_settings(SandboxSettings, environ=sandbox_env(redis_server, tmp_path_factory.mktemp("sbx")))
    with ServerThread(sandbox_app(settings)) as server:
        yield server.url


@pytest.fixture
def llm() -> Iterator[ServerThread]:
    """The scripted llama-server (tests/rag/fake_llm.py) on a real socket."""
    from tests.rag.fake_llm import fake_llm

    with ServerThread(fake_llm(LLAMA_KEY)) as server:
        yield server
