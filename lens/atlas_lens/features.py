"""Features the Lens reads: embeddings from an OpenAI-compatible ``/v1/embeddings`` server.

Two sources, compared by ``make bench-lens`` on the same data (docs/lens.md):

- ``embed``: the embedding sidecar (llama-server B, all-MiniLM-L6-v2 locally) on the candidate's code alone;
- ``main``: the main model's own embeddings (a llama.cpp server of the main model's GGUF started with
  embeddings on, mean-pooled) of the problem and the code together (ATLAS V3's choice).

Texts are cut to a bounded length before they are sent; vectors are cached by the text's hash in a bounded LRU,
so the scorer and the feedback recorder embed a candidate once."""

from __future__ import annotations

import base64
import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from typing import Literal

import httpx
import numpy as np

Source = Literal["embed", "main"]
SOURCES: tuple[Source, ...] = ("embed", "main")
MAX_CODE_CHARS = 6000
MAX_PROBLEM_CHARS = 3000
BATCH = 16
CACHE = 4096


def pack(vector: np.ndarray) -> str:
    """A vector as base64 float16 (a quarter of its JSON size; plenty for a feature)."""
    return base64.b64encode(vector.astype(np.float16).tobytes()).decode()


def unpack(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=np.float16).astype(np.float32)


class EmbedUnavailable(Exception):
    """The embedding server failed or answered something unusable."""


def code_text(source: Source, problem: str, code: str) -> str:
    """What is embedded for one candidate under a source."""
    if source == "main":
        return f"{problem[:MAX_PROBLEM_CHARS]}\n\n{code[:MAX_CODE_CHARS]}"
    return code[:MAX_CODE_CHARS] or " "


def problem_text(problem: str) -> str:
    return problem[:MAX_PROBLEM_CHARS] or " "


def _pool(vector: object) -> list[float]:
    """A server that does not pool (llama.cpp with a causal model) returns one vector per token: their mean."""
    if isinstance(vector, list) and vector and isinstance(vector[0], list):
        return list(np.asarray(vector, dtype=np.float32).mean(axis=0))
    if isinstance(vector, list):
        return [float(v) for v in vector]
    raise EmbedUnavailable("an embedding that is not a list of numbers")


class EmbeddingClient:
    def __init__(self, http: httpx.AsyncClient, url: str, api_key: str, timeout_s: float = 30.0,
                 cache: int = CACHE) -> None:
        self.http = http
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.cache_size = cache
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One row per text (float32); EmbedUnavailable when the server fails."""
        keys = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
        missing = list(dict.fromkeys(k for k in keys if k not in self._cache))
        by_key = dict(zip(keys, texts, strict=True))
        for i in range(0, len(missing), BATCH):
            batch = missing[i:i + BATCH]
            vectors = await self._call([by_key[k] for k in batch])
            for k, v in zip(batch, vectors, strict=True):
                self._remember(k, v)
        rows = []
        for k in keys:
            self._cache.move_to_end(k)
            rows.append(self._cache[k])
        return np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)

    def _remember(self, key: str, vector: np.ndarray) -> None:
        self._cache[key] = vector
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    async def _call(self, texts: list[str]) -> list[np.ndarray]:
        try:
            answer = await self.http.post(f"{self.url}/v1/embeddings", json={"input": texts},
                                          headers={"Authorization": f"Bearer {self.api_key}"},
                                          timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            raise EmbedUnavailable(f"{self.url} is unreachable ({type(exc).__name__})") from None
        if answer.status_code != 200:
            raise EmbedUnavailable(f"{self.url} answered {answer.status_code}")
        try:
            data = sorted(answer.json()["data"], key=lambda d: d["index"])
            vectors = [np.asarray(_pool(d["embedding"]), dtype=np.float32) for d in data]
        except (KeyError, TypeError, ValueError) as exc:
            raise EmbedUnavailable(f"{self.url} answered an unusable body ({type(exc).__name__})") from None
        if len(vectors) != len(texts) or len({v.shape for v in vectors}) != 1:
            raise EmbedUnavailable(f"{self.url} answered {len(vectors)} vectors for {len(texts)} texts")
        if not all(np.isfinite(v).all() for v in vectors):
            raise EmbedUnavailable(f"{self.url} answered a vector with NaN or infinite values")
        return vectors
