"""The demo project the index tests sync (Python, Go, JavaScript and a README), and their helpers: a run on a
fresh store with it synced, and the fakes at the edge (a hashed-words embedder, one that is down)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import numpy as np
from redis.asyncio import Redis

from atlas_core.settings import load_settings
from atlas_pageindex.search import EmbedderDown, Hit
from atlas_pageindex.settings import PageIndexSettings
from atlas_pageindex.store import ProjectStore, key
from atlas_pageindex.tokens import words
from tests.conftest import RedisServer

T = TypeVar("T")
OWNER = "7"

COOKIES = '''\
"""Cookie handling for outgoing requests."""


def merge_cookies(request, jar):
    """Copy every cookie of the jar into the request's Cookie header."""
    pairs = [f"{name}={value}" for name, value in jar.items()]
    request.headers["Cookie"] = "; ".join(pairs)
    return request


class Session:
    """Keeps cookies between requests."""

    def __init__(self):
        self.jar = {}

    def send(self, request):
        """Send the request with the session's cookies attached."""
        return merge_cookies(request, self.jar)
'''
HEADERS = '''\
package server

import "strings"

// ParseHeader splits one HTTP header line into its name and its value.
func ParseHeader(line string) (string, string) {
\tname, value, _ := strings.Cut(line, ":")
\treturn strings.TrimSpace(name), strings.TrimSpace(value)
}
'''
DEBOUNCE = '''\
// Delay calls to fn until ms milliseconds pass without another call.
export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
'''
README = "# Demo\n\nA small project: cookies, headers and a debounce helper.\n"
PROJECT = {"pkg/cookies.py": COOKIES, "server/headers.go": HEADERS, "web/debounce.js": DEBOUNCE,
           "README.md": README}


def settings(**overrides: object) -> PageIndexSettings:
    return load_settings(PageIndexSettings, environ={f"ATLAS_{k.upper()}": str(v) for k, v in overrides.items()},
                         read_conf_file=False)


def run(server: RedisServer, work: Callable[[ProjectStore, str], Awaitable[T]],
        config: PageIndexSettings | None = None) -> T:
    """``work(store, project id)`` with the demo project synced, on a fresh bytes client."""

    async def main() -> T:
        client = Redis.from_url(server.url, password=server.password)
        try:
            store = ProjectStore(client, config or settings())
            pid = (await store.create(OWNER, "demo")).id
            await store.write(OWNER, pid, [{"path": p, "content": c} for p, c in PROJECT.items()], [])
            return await work(store, pid)
        finally:
            await client.aclose()

    return asyncio.run(main())


def where(hit: Hit) -> tuple[str, int, int, str]:
    return hit.piece.path, hit.piece.start_line, hit.piece.end_line, hit.piece.qualname


async def vector_keys(store: ProjectStore, pid: str) -> list[str]:
    return sorted(k.decode() if isinstance(k, bytes) else k for k in await store.redis.hkeys(key(pid, "emb")))


class HashedWords:
    """A deterministic embedder at the test's edge: a hashed bag of the text's words (what matters here is that
    related texts share dimensions, not the quality of the model)."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.texts.extend(texts)
        rows = np.zeros((len(texts), 128), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in words(text):
                rows[i, int(hashlib.sha256(word.encode()).hexdigest()[:8], 16) % 128] += 1.0
        return rows


class DownEmbedder:
    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        raise EmbedderDown("connection refused")
