"""PageIndex as a service runs it: projects (the store), each one's index kept in memory (least recently used
dropped), search in every mode, the context a solve's prompts carry, and the background work a sync leaves
(embeddings, then summaries), done once by whichever replica takes it.

    pages = PageIndex(store, settings, embedder, complete, registry)
    found = await pages.search(owner, pid, "merge the cookies into the request", k=10, mode="auto")
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram
from redis.exceptions import RedisError

from atlas_pageindex.index import ProjectIndex
from atlas_pageindex.search import MODES, Embedder, EmbedderDown, Found, Hit, context_text, search
from atlas_pageindex.settings import PageIndexSettings
from atlas_pageindex.store import ProjectError, ProjectStore, Stamp, key
from atlas_pageindex.summaries import summarise
from atlas_pageindex.tree import Complete, build, nodes, walk

log = logging.getLogger("atlas.pageindex")
EMBED_BATCH = 32
BACKGROUND_LOCK_MS = 600_000  # one replica at a time does a project's background work; a crashed one's lock expires
IDLE_S = 2.0


@dataclass(frozen=True)
class Context:
    text: str
    hits: list[Hit]  # the pieces the text holds, best first
    top_bm25: float  # the best BM25 score among the hits found (the router's retrieval confidence)
    mode: str


class Metrics:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.searches = Counter("atlas_pageindex_searches_total", "Project searches, by the mode that ran and "
                                "whether it found anything", ["mode", "found"], registry=registry)
        self.seconds = Histogram("atlas_pageindex_search_seconds", "Time of one project search, by mode",
                                 ["mode"], registry=registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
        self.files = Counter("atlas_pageindex_files_total", "Project files written by syncs, by outcome: indexed "
                             "(new or changed), unchanged (same hash: not re-indexed), skipped, deleted",
                             ["outcome"], registry=registry)
        self.embedded = Counter("atlas_pageindex_embedded_total", "Pieces of project code embedded in the "
                                "background", registry=registry)
        self.summaries = Counter("atlas_pageindex_summaries_total", "Summaries the model wrote in the background",
                                 registry=registry)
        self.tree_calls = Counter("atlas_pageindex_tree_calls_total", "Model calls made by tree searches",
                                  registry=registry)
        self.background_errors = Counter("atlas_pageindex_background_errors_total", "Background runs that failed, "
                                         "by stage", ["stage"], registry=registry)


class PageIndex:
    def __init__(self, store: ProjectStore, settings: PageIndexSettings, embedder: Embedder | None,
                 complete: Complete | None, registry: CollectorRegistry | None = None) -> None:
        self.store = store
        self.settings = settings
        self.embedder = embedder if settings.project_embeddings else None
        self.complete = complete
        self.metrics = Metrics(registry)
        self._cache: OrderedDict[str, ProjectIndex] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    async def index(self, pid: str, stamp: Stamp | None = None) -> ProjectIndex:
        """The project's index, brought up to date (``stamp``: the project's as the caller read it; else one
        Redis round trip reads it, and nothing more when nothing changed)."""
        lock = self._locks.setdefault(pid, asyncio.Lock())
        async with lock:
            index = self._cache.get(pid) or ProjectIndex(pid)
            try:
                await index.refresh(self.store, stamp, vectors=self.embedder is not None)
            except LookupError:
                self._cache.pop(pid, None)
                self._locks.pop(pid, None)
                raise ProjectError(404, f"no project '{pid}' among yours", "project_id") from None
            self._cache[pid] = index
            self._cache.move_to_end(pid)
            while len(self._cache) > self.settings.project_index_cache:
                dropped, _ = self._cache.popitem(last=False)
                self._locks.pop(dropped, None)
            return index

    async def search(self, owner: str, pid: str, query: object, k: object = 10, mode: object = "auto") -> Found:
        if not isinstance(query, str) or not query.strip() or len(query) > 4_000:
            raise ProjectError(400, "'query' must be 1 to 4,000 characters of text", "query")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= self.settings.project_search_max_k:
            raise ProjectError(400, f"'k' must be an integer from 1 to {self.settings.project_search_max_k}", "k")
        if mode not in MODES:
            raise ProjectError(400, f"'mode' must be one of {', '.join(MODES)}", "mode")
        project = await self.store.get(owner, pid)
        started = time.perf_counter()
        index = await self.index(pid, project.stamp)  # the owner check read the stamp: no second round trip
        if mode == "tree":
            found = await self._tree(index, query, k)
        else:
            found = await search(index, query, k, str(mode), self.embedder)
        self.metrics.seconds.labels(found.mode).observe(time.perf_counter() - started)
        self.metrics.searches.labels(found.mode, "yes" if found.hits else "no").inc()
        return found

    async def _tree(self, index: ProjectIndex, query: str, k: int) -> Found:
        if self.complete is None:
            raise ProjectError(503, "tree search needs the model, which this service has no access to")
        complete = self.complete
        root = build(index)
        have = await self.store.summaries(index.pid, [n.key for n in nodes(root)])

        async def counted(prompt: str, max_tokens: int) -> str:
            self.metrics.tree_calls.inc()
            return await complete(prompt, max_tokens)

        ranked, _ = await walk(index, query, counted, have, calls=self.settings.project_tree_calls,
                               depth=self.settings.project_tree_depth, k=k, root=root)
        bm25 = dict(index.bm25_top(query, 200))
        return Found("tree", [Hit(index.pieces[i], s, bm25.get(i, 0.0)) for i, s in ranked])

    async def context(self, owner: str, pid: str, query: str) -> Context | None:
        """The retrieved code a solve's prompts carry (None: the project holds nothing that matches)."""
        s = self.settings
        found = await self.search(owner, pid, query[:4_000], k=min(20, s.project_search_max_k), mode="auto")
        if not found.hits:
            return None
        sources = await self.store.sources(pid, sorted({h.piece.path for h in found.hits}))
        text, used = context_text(found.hits, sources, s.project_context_chars, s.project_context_chunks)
        if not used:
            return None
        return Context(text, used, max(h.bm25 for h in found.hits), found.mode)

    def count_write(self, written: int, unchanged: int, skipped: int, deleted: int) -> None:
        for outcome, n in (("indexed", written), ("unchanged", unchanged), ("skipped", skipped),
                           ("deleted", deleted)):
            if n:
                self.metrics.files.labels(outcome).inc(n)

    # -- the background -------------------------------------------------------------------------------------

    async def run_background(self) -> None:
        """Forever: take a project a sync marked, and compute what it lacks. Cancel to stop."""
        while True:
            try:
                busy = await self.background_once()
            except RedisError as exc:
                log.warning("project background work paused: Redis failed (%s)", type(exc).__name__)
                busy = False
            if not busy:
                await asyncio.sleep(IDLE_S)

    async def background_once(self) -> bool:
        """One project's embeddings, then its summaries; False when no project was waiting."""
        pid = await self.store.pending()
        if pid is None:
            return False
        lock = key(pid, "background")
        if not await self.store.redis.set(lock, "1", nx=True, px=BACKGROUND_LOCK_MS):
            await self.store.mark_pending(pid)  # another replica is at it; look again later
            return False
        try:
            index = await self.index(pid)
            if self.embedder is not None:
                await self._embed(index)
            if self.settings.project_summaries and self.complete is not None:
                await self._summarise(index)
        except ProjectError:
            pass  # deleted meanwhile
        finally:
            await self.store.redis.delete(lock)
        return True

    async def _embed(self, index: ProjectIndex) -> None:
        assert self.embedder is not None
        wanted = {k: text for p in index.pieces for k, text in p.views().items()}
        have = await self.store.vectors(index.pid, list(wanted))
        todo = [k for k in wanted if k not in have]
        try:
            for i in range(0, len(todo), EMBED_BATCH):
                batch = todo[i:i + EMBED_BATCH]
                try:
                    rows = await self.embedder.embed([wanted[k] for k in batch])
                except EmbedderDown as exc:
                    self.metrics.background_errors.labels("embed").inc()
                    log.warning("project %s: embeddings stopped, the embedding server failed (%s); retried at "
                                "the next sync", index.pid, exc)
                    return
                await self.store.put_vectors(index.pid, {k: np.asarray(r, dtype=np.float32)
                                                         for k, r in zip(batch, rows, strict=True)})
                self.metrics.embedded.inc(len(batch))
            await self.store.prune(index.pid, "emb", set(wanted))
        finally:
            if todo:  # what was stored, even partly, goes live on every replica at its next query
                await self.store.mark_embedded(index.pid)

    async def _summarise(self, index: ProjectIndex) -> None:
        assert self.complete is not None
        root = build(index)
        every = nodes(root)
        keys = [n.key for n in every]
        have = await self.store.summaries(index.pid, keys)
        # Only the files whose code the model still has to read: a re-run after one file changed reads one file.
        unread = {index.pieces[n.piece].path for n in every if n.piece is not None and not n.children
                  and n.key not in have}
        sources = await self.store.sources(index.pid, sorted(unread))

        async def save(summary_key: str, text: str) -> None:
            await self.store.put_summary(index.pid, summary_key, text)
            self.metrics.summaries.inc()

        try:
            await summarise(root, index, sources, self.complete, have, save, self.settings.project_summary_max_nodes)
        except Exception as exc:  # the model failing is not this project's fault: what was written stays
            self.metrics.background_errors.labels("summarise").inc()
            log.warning("project %s: summaries stopped (%s); the rest at the next sync", index.pid,
                        type(exc).__name__)
        await self.store.prune(index.pid, "sum", set(keys))
