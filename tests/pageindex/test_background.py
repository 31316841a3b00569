"""PageIndex's background work on a real store: the embeddings it computes turn on hybrid search (another replica
uses them without embedding again, a changed file re-embeds only its changed pieces), and when the embedding server
fails it stores nothing, counts the error and BM25 takes over, saying so."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from atlas_pageindex.service import PageIndex
from atlas_pageindex.store import ProjectStore, key
from tests.conftest import RedisServer
from tests.pageindex.sample import (
    HEADERS,
    OWNER,
    DownEmbedder,
    HashedWords,
    run,
    vector_keys,
    where,
)


def test_background_embeddings_turn_on_hybrid_search(redis_url: RedisServer) -> None:
    async def work(store: ProjectStore, pid: str) -> None:
        embedder = HashedWords()
        pages = PageIndex(store, store.settings, embedder=embedder, complete=None)
        query = "split a header line into its name and value"
        before = await pages.search(OWNER, pid, query, k=3, mode="auto")
        assert before.mode == "bm25" and before.note is not None and "no embeddings yet" in before.note

        assert await pages.background_once() is True
        assert await pages.background_once() is False  # nothing else was waiting
        index = await pages.index(pid)
        stored = await vector_keys(store, pid)
        assert stored == sorted({k for p in index.pieces for k in p.views()})
        assert len(embedder.texts) == len(stored) and bool(index.has_vector.all())

        found = await pages.search(OWNER, pid, query, k=3, mode="auto")
        assert (found.mode, found.note) == ("hybrid", None)
        assert where(found.hits[0]) == ("server/headers.go", 6, 9, "ParseHeader")
        embedded = await pages.search(OWNER, pid, query, k=3, mode="embed")
        assert embedded.mode == "embed" and where(embedded.hits[0])[0] == "server/headers.go"
        assert (await pages.search(OWNER, pid, "merge_cookies", k=3, mode="auto")).mode == "bm25"  # a name

        # another replica reads the stored vectors: hybrid at once, without embedding the project again
        replica = PageIndex(store, store.settings, embedder=HashedWords(), complete=None)
        assert (await replica.search(OWNER, pid, query, k=3, mode="auto")).mode == "hybrid"

        # a sync that changes one file's doc comment: only the views whose text changed (the function's code and
        # the file's head, not their names) are embedded again, and the old vectors are pruned
        embedder.texts.clear()
        changed = HEADERS.replace("its name and its value", "the header's name and value")
        await store.write(OWNER, pid, [{"path": "server/headers.go", "content": changed}], [])
        assert await pages.background_once() is True
        assert len(embedder.texts) == 2 and all("server/headers.go" in t for t in embedder.texts)
        index = await pages.index(pid)
        assert await vector_keys(store, pid) == sorted({k for p in index.pieces for k in p.views()})

        # the embedding server fails: BM25 answers alone, and says why
        down = PageIndex(store, store.settings, embedder=DownEmbedder(), complete=None)
        for mode in ("auto", "hybrid", "embed"):
            fallback = await down.search(OWNER, pid, query, k=3, mode=mode)
            assert fallback.mode == "bm25" and fallback.note is not None, mode
            assert "embedding server failed" in fallback.note and "connection refused" in fallback.note
            assert where(fallback.hits[0]) == ("server/headers.go", 6, 9, "ParseHeader")

    run(redis_url, work)


def test_background_with_the_embedding_server_down_stores_nothing_and_goes_on(redis_url: RedisServer) -> None:
    async def work(store: ProjectStore, pid: str) -> None:
        pages = PageIndex(store, store.settings, embedder=DownEmbedder(), complete=None)
        assert await pages.background_once() is True
        assert await store.redis.hlen(key(pid, "emb")) == 0
        assert pages.metrics.background_errors.labels("embed")._value.get() == 1
        assert await store.redis.exists(key(pid, "background")) == 0  # its lock let go
        found = await pages.search(OWNER, pid, "merge_cookies", k=1, mode="auto")
        assert where(found.hits[0]) == ("pkg/cookies.py", 4, 8, "merge_cookies")

    run(redis_url, work)


def test_the_metrics_move_with_syncs_searches_and_the_background(redis_url: RedisServer) -> None:
    """Each PageIndex metric counts what really happened: a sync's files by outcome, searches by the mode that
    ran, the pieces embedded, the model's summaries and tree calls, and the background's failures."""

    def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
        return registry.get_sample_value(name, labels) or 0.0

    async def work(store: ProjectStore, pid: str) -> None:
        registry = CollectorRegistry()
        summaries = ["Parses one header line."] * 100

        async def model(prompt: str, max_tokens: int) -> str:
            return summaries.pop() if prompt.startswith("In one short sentence") else "1: 0"

        config = store.settings.model_copy(update={"project_summary_max_nodes": 3})
        pages = PageIndex(store, config, embedder=HashedWords(), complete=model, registry=registry)
        result = await store.write(OWNER, pid, [{"path": "server/headers.go", "content": HEADERS + "\n// more\n"},
                                                {"path": "node_modules/x.js", "content": "x"}], [])
        pages.count_write(len(result.written), result.unchanged, len(result.skipped), result.deleted)
        assert value(registry, "atlas_pageindex_files_total", outcome="indexed") == 1
        assert value(registry, "atlas_pageindex_files_total", outcome="skipped") == 1

        await pages.search(OWNER, pid, "ParseHeader", k=3)
        assert value(registry, "atlas_pageindex_searches_total", mode="bm25", found="yes") == 1
        assert value(registry, "atlas_pageindex_search_seconds_count", mode="bm25") == 1

        while await pages.background_once():
            pass
        embedded = value(registry, "atlas_pageindex_embedded_total")
        assert embedded == len({k for p in (await pages.index(pid)).pieces for k in p.views()})
        assert value(registry, "atlas_pageindex_summaries_total") == 3  # the configured bound

        await pages.search(OWNER, pid, "where is a header split", k=3, mode="tree")
        assert value(registry, "atlas_pageindex_tree_calls_total") >= 1
        assert value(registry, "atlas_pageindex_searches_total", mode="tree", found="no") == 1

        failures = CollectorRegistry()
        down = PageIndex(store, config, embedder=DownEmbedder(), complete=None, registry=failures)
        await store.write(OWNER, pid, [{"path": "web/new.js", "content": "function added() { return 1 }\n"}], [])
        assert await down.background_once() is True
        assert value(failures, "atlas_pageindex_background_errors_total", stage="embed") == 1

    run(redis_url, work)


def test_summaries_are_written_bottom_up_once_and_again_only_for_what_changed(redis_url: RedisServer) -> None:
    async def work(store: ProjectStore, pid: str) -> None:
        prompts: list[str] = []

        async def model(prompt: str, max_tokens: int) -> str:
            prompts.append(prompt)
            return f"Summary {len(prompts)}."

        pages = PageIndex(store, store.settings, embedder=None, complete=model)
        assert await pages.background_once() is True
        first = len(prompts)
        functions = [p for p in prompts if p.startswith("In one short sentence, say what this code does")]
        assert functions and prompts.index(functions[-1]) < len(prompts) - 1  # code first, then what holds it
        assert "Summary" in prompts[-1]  # the top directory is summarised from its children's summaries

        await store.mark_pending(pid)
        assert await pages.background_once() is True
        assert len(prompts) == first  # nothing changed: every summary is reused

        await store.write(OWNER, pid, [{"path": "web/debounce.js", "content": "function later() { return 2 }\n"}], [])
        assert await pages.background_once() is True
        again = prompts[first:]
        # the changed file's function, the file, its directory and the project's top: not the other files
        assert again and len(again) < first and not any("cookies" in p and "this code does" in p for p in again)

    run(redis_url, work)
