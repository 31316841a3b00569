"""Retrieval over one project's index: BM25, embeddings, their fusion, and the model's walk down the tree.

- ``auto``: a query that names code (``parse_header``, ``Session.send``) goes straight to BM25; any other to hybrid;
- ``bm25``: rank-bm25 over names, signatures, docstrings and code (``index``);
- ``embed``: cosine similarity of the query's embedding and each piece's two views (its code; its name and
  signature as words), summed (vectors the background stored);
- ``hybrid``: reciprocal-rank fusion of three lists: BM25, the code view and the name view (``RRF_K`` and the
  weights below were chosen with ``make bench-retrieval`` on requests, click and httpx; starlette is held out),
  BM25 alone where no vector is computed yet;
- ``tree``: the model walks project -> directory -> file -> class -> function (``tree``).

Every result cites its file and line range."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from atlas_pageindex.index import Piece, ProjectIndex
from atlas_pageindex.settings import SEARCH_MODES
from atlas_pageindex.tokens import is_identifier

MODES = SEARCH_MODES
MORE = "\n# ..."  # ends a piece cut short
RRF_K = 10  # reciprocal-rank fusion's constant: rank r adds weight / (RRF_K + r) (Cormack et al. use 60; 10
#             measured better here: the right piece is usually near the top of one list)
POOL = 100  # each list's length before fusion
BM25_WEIGHT = 1.0
CODE_WEIGHT = 1.0
NAME_WEIGHT = 0.5


class EmbedderDown(Exception):
    """The embedding server failed: retrieval goes on with BM25 alone and says so."""


class Embedder(Protocol):
    async def embed(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class Hit:
    piece: Piece
    score: float
    bm25: float  # its BM25 score (0 when BM25 did not find it): the router's retrieval confidence reads it

    def public(self) -> dict[str, object]:
        p = self.piece
        return {"path": p.path, "start_line": p.start_line, "end_line": p.end_line, "kind": p.kind, "name": p.name,
                "qualname": p.qualname, "signature": p.signature, "score": round(self.score, 6),
                "bm25": round(self.bm25, 4)}


@dataclass(frozen=True)
class Found:
    mode: str  # the mode that ran (auto resolves to bm25 or hybrid)
    hits: list[Hit]
    note: str | None = None  # why a mode fell back (no embeddings yet, the embedding server down)


async def query_vector(embedder: Embedder, query: str) -> np.ndarray:
    rows = await embedder.embed([query])
    return np.asarray(rows[0], dtype=np.float32)


def fuse(lists: list[tuple[list[tuple[int, float]], float]], k: int) -> list[tuple[int, float]]:
    """Reciprocal-rank fusion: each list adds ``weight / (RRF_K + rank)`` to the pieces it ranks."""
    scores: dict[int, float] = {}
    for ranked, weight in lists:
        for rank, (i, _) in enumerate(ranked, start=1):
            scores[i] = scores.get(i, 0.0) + weight / (RRF_K + rank)
    return sorted(scores.items(), key=lambda x: (-x[1], x[0]))[:k]


async def search(index: ProjectIndex, query: str, k: int, mode: str, embedder: Embedder | None) -> Found:
    """The ``k`` best pieces for ``query`` (tree search is ``tree.walk``, which needs the model)."""
    if mode == "auto":
        mode = "bm25" if is_identifier(query) or embedder is None else "hybrid"
    bm25 = index.bm25_top(query, max(k, POOL))
    bm25_of = dict(bm25)
    if mode == "bm25":
        return Found("bm25", _hits(index, bm25[:k], bm25_of))
    if embedder is None or index.vectors is None or not index.has_vector.any():
        note = "no embeddings yet (the background computes them after a sync); BM25 alone"
        return Found("bm25", _hits(index, bm25[:k], bm25_of), note)
    try:
        vector = await query_vector(embedder, query)
    except EmbedderDown as exc:
        return Found("bm25", _hits(index, bm25[:k], bm25_of), f"the embedding server failed ({exc}); BM25 alone")
    if mode == "embed":
        return Found("embed", _hits(index, index.vector_top(vector, k), bm25_of))
    code, name = index.vector_top(vector, POOL, "code"), index.vector_top(vector, POOL, "name")
    fused = fuse([(bm25, BM25_WEIGHT), (code, CODE_WEIGHT), (name, NAME_WEIGHT)], k)
    return Found("hybrid", _hits(index, fused, bm25_of))


def _hits(index: ProjectIndex, ranked: list[tuple[int, float]], bm25_of: dict[int, float]) -> list[Hit]:
    return [Hit(index.pieces[i], s, bm25_of.get(i, 0.0)) for i, s in ranked]


def context_text(index_hits: list[Hit], sources: dict[str, str], max_chars: int, max_pieces: int
                 ) -> tuple[str, list[Hit]]:
    """The prompts' context: each hit's code under a ``# path:start-end`` line, best first, within ``max_chars``
    (a hit inside one already shown is skipped)."""
    parts: list[str] = []
    used: list[Hit] = []
    spent = 0
    for hit in index_hits:
        p = hit.piece
        if len(used) >= max_pieces:
            break
        if any(u.piece.path == p.path and u.piece.start_line <= p.start_line and p.end_line <= u.piece.end_line
               for u in used):
            continue
        lines = sources.get(p.path, "").split("\n")[p.start_line - 1:p.end_line]
        body = "\n".join(lines)
        header = f"# {p.path}:{p.start_line}-{p.end_line}"
        sep = 2 if parts else 0  # the blank line between pieces
        room = max_chars - spent - sep - len(header) - 1
        if room < 200:
            break
        if len(body) > room:
            cut = body[:room - len(MORE)]
            body = (cut.rsplit("\n", 1)[0] if "\n" in cut else cut) + MORE
        parts.append(f"{header}\n{body}")
        spent += sep + len(header) + 1 + len(body)
        used.append(hit)
    return "\n\n".join(parts), used
