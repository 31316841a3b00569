"""A project's search index in memory: its pieces (functions, classes, file heads, windows of text files), BM25
over their words (rank-bm25) and their embeddings, kept per process and brought up to date from Redis by version.

Up to date means: when the project's version moved, only the files whose hash changed are read again and
re-chunked; BM25's statistics are recomputed over the words already split (cheap next to reading and parsing);
the vector matrices are reassembled when the background's embedding stamp moved (it stored new vectors).
Nothing is rebuilt per request.

    index = ProjectIndex("p_...")
    await index.refresh(store)
    index.bm25_top("parse the header", k=10)  # [(piece number, score), ...]
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from rank_bm25 import BM25Okapi

from atlas_pageindex.outline import Outline
from atlas_pageindex.store import ProjectStore, Stamp
from atlas_pageindex.tokens import readable, words

WINDOW = 60  # lines per piece of a file the outline does not read
MAX_PIECE_LINES = 400  # a longer function is indexed by its first lines
EMBED_CHARS = 1_200  # what the embedding model reads of a piece (all-MiniLM-L6-v2 reads 256 word pieces)
NAME_WEIGHT = 3  # a piece's own name counts this many times in BM25
IDF_FLOOR = 0.05


@dataclass(frozen=True)
class Piece:
    path: str
    start_line: int
    end_line: int
    kind: str  # function, class, file (its head: module doc and top-level code), text (a window)
    name: str
    qualname: str
    signature: str
    doc: str
    embed_text: str  # the code view: kind, name, path, signature, doc and code, cut to EMBED_CHARS

    @property
    def name_text(self) -> str:
        """The name view: its name as words and its signature (a question often names what a function does in
        the words of its name, which the code view dilutes)."""
        return f"{readable(self.qualname or self.name or self.path)}: {self.signature or self.path}"

    @property
    def embed_key(self) -> str:
        """The key of its code view's vector: a hash of the text, so an unchanged piece keeps its vector."""
        return _hash(self.embed_text)

    @property
    def name_key(self) -> str:
        return _hash("name\n" + self.name_text)

    def views(self) -> dict[str, str]:
        """Each text to embed, by its vector's key."""
        return {self.embed_key: self.embed_text, self.name_key: self.name_text}

    def citation(self) -> dict[str, object]:
        return {"path": self.path, "start_line": self.start_line, "end_line": self.end_line, "kind": self.kind,
                "name": self.qualname or self.name}


class FlooredBM25(BM25Okapi):  # type: ignore[misc]
    """rank-bm25's BM25Okapi with every idf at least ``IDF_FLOOR``. Okapi's idf is 0 for a term in half the
    pieces and negative above (rank-bm25 lifts those to a fraction of the average, which a small corpus can make
    0 or less): in a project of a few files, the one function a query names would then score nothing. On the
    benchmark's packages the floor changes no rank (``make bench-retrieval``)."""

    def _calc_idf(self, nd: dict[str, int]) -> None:
        super()._calc_idf(nd)
        for word, idf in self.idf.items():
            self.idf[word] = max(idf, IDF_FLOOR)


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass
class FileEntry:
    sha: str
    pieces: list[Piece]
    words: list[list[str]]


def pieces_of(path: str, text: str, outline: Outline) -> tuple[list[Piece], list[list[str]]]:
    """A file's pieces and each piece's BM25 words."""
    lines = text.split("\n")
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()  # the newline ends the last line; no line follows it
    out: list[Piece] = []
    bags: list[list[str]] = []
    path_words = words(path)

    def add(piece: Piece, body: str) -> None:
        out.append(piece)
        name_words = words(piece.qualname or piece.name) * NAME_WEIGHT
        bags.append(path_words + name_words + words(piece.signature) + words(piece.doc) + words(body))

    if outline.language is None:
        for start in range(0, max(1, len(lines)), WINDOW):
            chunk = "\n".join(lines[start:start + WINDOW])
            if not chunk.strip():
                continue
            end = min(len(lines), start + WINDOW)
            add(Piece(path, start + 1, end, "text", path.rsplit("/", 1)[-1], "", "", "",
                      f"{path} lines {start + 1}-{end}\n{chunk}"[:EMBED_CHARS]), chunk)
        return out, bags
    covered = [False] * len(lines)
    for node in outline.nodes:
        first, last = node.start_line - 1, min(node.end_line, len(lines))
        if node.kind == "class":
            # A class's own words are its declaration and doc; its methods are pieces of their own.
            body = "\n".join(lines[first:min(last, first + 30)])
        else:
            body = "\n".join(lines[first:min(last, first + MAX_PIECE_LINES)])
            for n in range(first, last):
                covered[n] = True
        embed = (f"{node.kind} {readable(node.qualname)} in {path}\n{node.signature}\n{node.doc}\n"
                 f"{body}")[:EMBED_CHARS]
        add(Piece(path, node.start_line, node.end_line, node.kind, node.name, node.qualname, node.signature,
                  node.doc, embed), body)
    # The file's head: its doc and whatever is outside every function (imports, constants, top-level code).
    rest = [line for n, line in enumerate(lines) if not covered[n]][:200]
    head = "\n".join(rest)
    if outline.doc or head.strip():
        add(Piece(path, 1, max(1, len(lines)), "file", path.rsplit("/", 1)[-1], "", "", outline.doc,
                  f"file {path}\n{outline.doc}\n{head}"[:EMBED_CHARS]), head)
    return out, bags


class ProjectIndex:
    """One project's pieces, BM25 and vectors, in this process."""

    def __init__(self, pid: str) -> None:
        self.pid = pid
        self.version = -1
        self.files: dict[str, FileEntry] = {}
        self.pieces: list[Piece] = []
        self.bm25: FlooredBM25 | None = None
        self.vectors: np.ndarray | None = None  # the code views: a unit row per piece (zeros where none is yet)
        self.name_vectors: np.ndarray | None = None  # the name views, likewise
        self.has_vector: np.ndarray = np.zeros(0, dtype=bool)
        self.embedded = -1  # the project's embedding stamp the vectors were read at
        self._vector_cache: dict[str, np.ndarray] = {}

    async def refresh(self, store: ProjectStore, stamp: Stamp | None = None, vectors: bool = True) -> bool:
        """Brings the index to the project's version in Redis (``stamp``: its version and embedding stamp when
        the caller has read them already, else one round trip reads them); True when the files changed. The
        vectors are read again only when the background has stored new ones since (its stamp moved)."""
        stamp = stamp if stamp is not None else await store.stamp(self.pid)
        if stamp is None:
            raise LookupError(self.pid)
        version, embedded = stamp
        if version == self.version:
            if vectors and embedded != self.embedded:
                await self._load_vectors(store, embedded)
            return False
        metas = await store.metas(self.pid)
        stale = [p for p, m in metas.items() if p not in self.files or self.files[p].sha != m.sha]
        for path in [p for p in self.files if p not in metas]:
            del self.files[path]
        for i in range(0, len(stale), 500):
            batch = stale[i:i + 500]
            sources = await store.sources(self.pid, batch)
            outlines = await store.outlines(self.pid, batch)
            for path in batch:
                if path in sources and path in outlines:
                    found, bags = pieces_of(path, sources[path], outlines[path])
                    self.files[path] = FileEntry(metas[path].sha, found, bags)
        self.version = version
        self.rebuild()
        if vectors:
            await self._load_vectors(store, embedded)
        return True

    def add_file(self, path: str, sha: str, text: str, outline: Outline) -> None:
        """Indexes one file in place (the benchmark's and tests' path without Redis); call ``rebuild`` after."""
        found, bags = pieces_of(path, text, outline)
        self.files[path] = FileEntry(sha, found, bags)

    def rebuild(self) -> None:
        """The flat list of pieces, BM25 and empty vectors, from ``files``."""
        self.pieces = [p for path in sorted(self.files) for p in self.files[path].pieces]
        bags = [b for path in sorted(self.files) for b in self.files[path].words]
        # rank-bm25 divides by the corpus size: an empty project has no BM25 at all
        self.bm25 = FlooredBM25([b or ["_"] for b in bags]) if bags else None
        self.vectors = self.name_vectors = None
        self.has_vector = np.zeros(len(self.pieces), dtype=bool)
        self.embedded = -1

    async def _load_vectors(self, store: ProjectStore, embedded: int) -> None:
        wanted = [k for p in self.pieces for k in (p.embed_key, p.name_key)]
        missing = [k for k in dict.fromkeys(wanted) if k not in self._vector_cache]
        for i in range(0, len(missing), 1000):
            self._vector_cache.update(await store.vectors(self.pid, missing[i:i + 1000]))
        live = set(wanted)
        for k in [k for k in self._vector_cache if k not in live]:
            del self._vector_cache[k]
        self.set_vectors(self._vector_cache)
        self.embedded = embedded

    def set_vectors(self, by_key: dict[str, np.ndarray]) -> None:
        """Assembles the two view matrices; a piece counts as embedded once both its views are."""
        dims = {v.shape[0] for v in by_key.values()}
        if len(dims) != 1 or not self.pieces:
            self.vectors = self.name_vectors = None
            self.has_vector = np.zeros(len(self.pieces), dtype=bool)
            return
        dim = dims.pop()
        code = np.zeros((len(self.pieces), dim), dtype=np.float32)
        name = np.zeros((len(self.pieces), dim), dtype=np.float32)
        have = np.zeros(len(self.pieces), dtype=bool)
        for i, piece in enumerate(self.pieces):
            a, b = by_key.get(piece.embed_key), by_key.get(piece.name_key)
            if a is not None and b is not None:
                code[i], name[i] = a, b
                have[i] = True
        for matrix in (code, name):  # unit rows, so a dot product is the cosine; a zero vector counts as none
            norms = np.linalg.norm(matrix, axis=1)
            have &= norms > 0
            matrix[have] /= norms[have, None]
        self.vectors, self.name_vectors, self.has_vector = code, name, have

    def bm25_top(self, query: str, k: int) -> list[tuple[int, float]]:
        terms = words(query)
        if self.bm25 is None or not terms:
            return []
        scores = self.bm25.get_scores(terms)
        return _top(scores, k, positive=True)

    def vector_top(self, query_vector: np.ndarray, k: int, view: str = "both") -> list[tuple[int, float]]:
        """The pieces nearest the query by cosine similarity of one view ("code", "name") or their sum."""
        if self.vectors is None or self.name_vectors is None or not self.has_vector.any():
            return []
        norm = float(np.linalg.norm(query_vector))
        if norm == 0:
            return []
        q = query_vector.astype(np.float32) / norm
        scores = np.zeros(len(self.pieces), dtype=np.float32)
        if view in ("code", "both"):
            scores += self.vectors @ q
        if view in ("name", "both"):
            scores += self.name_vectors @ q
        scores[~self.has_vector] = -np.inf
        return _top(scores, k, positive=False)


def _top(scores: np.ndarray, k: int, positive: bool) -> list[tuple[int, float]]:
    if k <= 0 or scores.size == 0:
        return []
    k = min(k, scores.size)
    idx = np.argpartition(-scores, k - 1)[:k]
    idx = idx[np.argsort(-scores[idx], kind="stable")]
    return [(int(i), float(scores[i])) for i in idx if np.isfinite(scores[i]) and (scores[i] > 0 or not positive)]
