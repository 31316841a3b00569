"""Projects in rag-api: PageIndex built over the engine's model and the embedding server, the solve's context
source, and the workspace a solve runs in when it asks for the project's own tests."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Sequence
from typing import TypeVar

import numpy as np
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from redis.exceptions import RedisError

from atlas_core.errors import ApiError
from atlas_engine import LLMClient, LLMUnavailable, ProjectRef, Retrieved, Solve, Workspace
from atlas_lens.features import EmbeddingClient, EmbedUnavailable
from atlas_pageindex.paths import PathRefused, clean_path
from atlas_pageindex.search import EmbedderDown
from atlas_pageindex.service import PageIndex
from atlas_pageindex.settings import PageIndexSettings
from atlas_pageindex.store import ProjectError, ProjectStore
from atlas_pageindex.tree import Complete

log = logging.getLogger("atlas.rag.projects")
T = TypeVar("T")
SANDBOX_FILES = 64  # the sandbox takes at most this many extra files per run (atlas_core.sandbox_api.Files)
SANDBOX_FILE_CHARS = 1_000_000


class Embeddings:
    """The embedding sidecar as PageIndex's embedder (its failure is EmbedderDown)."""

    def __init__(self, client: EmbeddingClient) -> None:
        self.client = client

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        try:
            return await self.client.embed(texts)
        except EmbedUnavailable as exc:
            raise EmbedderDown(str(exc)) from None


def completer(llm: LLMClient) -> Complete:
    """The model as PageIndex's ``complete``: one chat turn, greedy (summaries, tree scores)."""

    async def complete(prompt: str, max_tokens: int) -> str:
        generation = await llm.chat([{"role": "user", "content": prompt}], temperature=0.0, seed=0,
                                    max_tokens=max_tokens)
        return generation.text

    return complete


def build_pages(redis: Redis, settings: PageIndexSettings, sidecar: EmbeddingClient, llm: LLMClient,
                registry: CollectorRegistry) -> PageIndex:
    return PageIndex(ProjectStore(redis, settings), settings, Embeddings(sidecar), completer(llm), registry)


async def answered(work: Awaitable[T]) -> T:
    """``work``'s result, its failures as the project API answers them: the store's refusals as they are, Redis
    or the model (tree search) down as 503 with the reason."""
    try:
        return await work
    except ProjectError as exc:
        raise ApiError(exc.status, exc.message, param=exc.param) from None
    except RedisError:
        raise ApiError(503, "projects are unavailable (Redis is down); retry shortly") from None
    except LLMUnavailable as exc:
        raise ApiError(503, f"the model is unavailable for tree search: {exc}") from None


class ProjectContext:
    """The engine's ContextSource: the caller's project code that best matches the problem, cited by file and
    lines. Never raises: a retrieval that fails leaves the solve without context (and says so in the log)."""

    def __init__(self, pages: PageIndex) -> None:
        self.pages = pages

    async def context(self, solve: Solve) -> Retrieved | None:
        if solve.project is None or solve.owner is None:
            return None
        try:
            found = await self.pages.context(solve.owner, solve.project.id, solve.problem.text)
        except (ProjectError, RedisError, LLMUnavailable) as exc:
            log.warning("solve %s: no project context (%s)", solve.id, type(exc).__name__)
            return None
        target = await self._target(solve)
        if found is None and target is None:
            return None
        text = "\n\n".join(x for x in (target, found and (
            "Code from the user's project (match its names and conventions; each piece is headed by its file and "
            f"lines):\n{found.text}")) if x)
        if found is None:
            return Retrieved(text=text, chunks=0, top_score=0.0, citations=[])
        return Retrieved(text=text, chunks=len(found.hits), top_score=found.top_bm25,
                         citations=[h.piece.citation() for h in found.hits])


    async def _target(self, solve: Solve) -> str | None:
        """The module the answer becomes, as it is now, when the solve runs against the project's tests."""
        ref = solve.project
        if ref is None or not ref.tests or ref.file is None:
            return None
        try:
            current = (await self.pages.store.sources(ref.id, [ref.file])).get(ref.file, "")
        except RedisError:
            current = ""
        module = ref.file.removesuffix(".py").replace("/", ".")
        shown = f"Its current content:\n```python\n{current[:4000]}\n```" if current else "It is new."
        return (f"Write the whole module {ref.file} of the user's project (its tests import it as {module}). "
                + shown)


async def prepare(pages: PageIndex, ref: ProjectRef | None, owner: str | None, prefix: str = "") -> Workspace | None:
    """Checks that the caller owns the project a solve names (404 otherwise, before any work), and reads its
    tests and the files they run among when the solve asks for them."""
    if ref is None:
        return None
    if owner is None:
        raise ApiError(400, "a solve that names a project must come through the proxy (the project is its user's)",
                       param=f"{prefix}project")

    async def checked() -> Workspace | None:
        await pages.store.get(owner, ref.id)
        return await _workspace(pages.store, ref, prefix) if ref.tests else None

    return await answered(checked())


async def _workspace(store: ProjectStore, ref: ProjectRef, prefix: str) -> Workspace:
    field = f"{prefix}project"
    if ref.file is None or not ref.file.endswith(".py"):
        raise ApiError(400, "'project.file' must name the Python module the answer becomes (e.g. 'pkg/slug.py') "
                       "when 'project.tests' is given", param=f"{field}.file")
    try:
        target = clean_path(ref.file, f"{field}.file")
        tests = [clean_path(t, f"{field}.tests.{i}") for i, t in enumerate(ref.tests)]
    except PathRefused as exc:
        raise ApiError(400, str(exc), param=exc.field) from None
    metas = await store.metas(ref.id)
    for i, path in enumerate(tests):
        if path not in metas or not path.endswith(".py"):
            raise ApiError(400, f"'{path}' is not a Python file of this project (sync it first)",
                           param=f"{field}.tests.{i}")
    # The files the tests may import: every Python file of the project but the tests themselves and the target,
    # conftest and package files first, then the files nearest the target and the tests, within the sandbox's
    # bound (the target becomes the candidate: a module that puts the candidate in its place when imported).
    near = {p.rpartition("/")[0] for p in [target, *tests]}
    pool = [p for p in metas if p.endswith(".py") and p not in tests and p != target]
    pool.sort(key=lambda p: (not p.endswith(("conftest.py", "__init__.py")), p.rpartition("/")[0] not in near, p))
    chosen = [p for p in pool if metas[p].size <= SANDBOX_FILE_CHARS][:SANDBOX_FILES - 1]
    sources = await store.sources(ref.id, chosen + tests)
    files = {p: sources[p] for p in chosen if p in sources}
    files[target] = ("# ATLAS: this module is the candidate program (solution.py) under test\n"
                     "import sys\nimport solution\nsys.modules[__name__] = solution\n")
    return Workspace(tests=[(p, sources[p]) for p in tests if p in sources], files=files)
