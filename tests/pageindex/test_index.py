"""PageIndex over a real store (the test Redis): a small Python + Go + JavaScript project is indexed, BM25 finds
functions by name and by description with their exact path and lines, a sync that changes one file re-reads only
that file, the model's tree walk reaches the function within its call and depth budgets, the prompts' context
cites ``path:start-end`` within its size, and the background's embeddings turn on hybrid search (and BM25 takes
over, saying so, when the embedding server fails). The model and the embedding server are the only fakes."""

from __future__ import annotations

import re

import pytest

from atlas_pageindex.index import Piece, ProjectIndex
from atlas_pageindex.outline import parse
from atlas_pageindex.search import Hit, context_text, search
from atlas_pageindex.service import PageIndex
from atlas_pageindex.store import ProjectError, ProjectStore
from atlas_pageindex.tree import walk
from tests.conftest import RedisServer
from tests.pageindex.sample import (
    COOKIES,
    OWNER,
    PROJECT,
    run,
    settings,
    where,
)


def test_bm25_finds_functions_by_name_and_by_description(redis_url: RedisServer) -> None:
    async def work(store: ProjectStore, pid: str) -> None:
        pages = PageIndex(store, store.settings, embedder=None, complete=None)
        index = await pages.index(pid)
        assert {p.path for p in index.pieces} == set(PROJECT)
        found = await pages.search(OWNER, pid, "merge_cookies", k=3, mode="auto")
        assert found.mode == "bm25" and found.note is None
        assert where(found.hits[0]) == ("pkg/cookies.py", 4, 8, "merge_cookies")
        assert found.hits[0].bm25 > 0 and found.hits[0].public()["signature"] == "def merge_cookies(request, jar)"
        for query, expected in [
            ("split a header line into its name and value", ("server/headers.go", 6, 9, "ParseHeader")),
            ("clear the timer and set a new timeout", ("web/debounce.js", 2, 8, "debounce")),
            ("Session.send", ("pkg/cookies.py", 17, 19, "Session.send")),
        ]:
            found = await pages.search(OWNER, pid, query, k=3, mode="bm25")
            assert where(found.hits[0]) == expected, query
        assert (await pages.search(OWNER, pid, "zebra quantum", k=3, mode="bm25")).hits == []
        cases: list[tuple[dict[str, object], str]] = [({"query": ""}, "query"), ({"k": 0}, "k"), ({"k": True}, "k"),
                                                       ({"mode": "x"}, "mode")]
        for bad, param in cases:
            args: dict[str, object] = {"query": "merge", "k": 3, "mode": "bm25"} | bad
            with pytest.raises(ProjectError) as caught:
                await pages.search(OWNER, pid, args["query"], k=args["k"], mode=args["mode"])
            assert (caught.value.status, caught.value.param) == (400, param)
        with pytest.raises(ProjectError) as caught:
            await pages.search(OWNER, pid, "merge", mode="tree")  # no model: tree search cannot run
        assert caught.value.status == 503

    run(redis_url, work)


def test_a_sync_that_changes_one_file_rereads_only_that_file(redis_url: RedisServer,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    async def work(store: ProjectStore, pid: str) -> None:
        read: list[list[str]] = []
        sources = store.sources

        async def spy(project: str, paths: list[str]) -> dict[str, str]:
            read.append(sorted(paths))
            return await sources(project, paths)

        monkeypatch.setattr(store, "sources", spy)
        pages = PageIndex(store, store.settings, embedder=None, complete=None)
        index = await pages.index(pid)
        assert read == [sorted(PROJECT)]
        before = dict(index.files)

        assert await pages.index(pid) is index and read == [sorted(PROJECT)]  # nothing changed: nothing read
        changed = COOKIES + '\n\ndef clear_cookies(jar):\n    """Forget every cookie."""\n    jar.clear()\n'
        result = await store.write(OWNER, pid, [{"path": p, "content": changed if p == "pkg/cookies.py" else c}
                                                for p, c in PROJECT.items()], [])
        assert (result.written, result.unchanged) == (["pkg/cookies.py"], 3)
        read.clear()
        assert await pages.index(pid) is index
        assert read == [["pkg/cookies.py"]]
        for path in ("server/headers.go", "web/debounce.js", "README.md"):
            assert index.files[path] is before[path]  # the same entry: not re-read, not re-split
        assert index.files["pkg/cookies.py"] is not before["pkg/cookies.py"]
        found = await pages.search(OWNER, pid, "clear_cookies", k=1, mode="bm25")
        assert where(found.hits[0]) == ("pkg/cookies.py", 22, 24, "clear_cookies")

        read.clear()
        await store.write(OWNER, pid, [], ["web/debounce.js"])
        await pages.index(pid)
        assert read == [] and "web/debounce.js" not in index.files
        assert all(p.path != "web/debounce.js" for p in index.pieces)

        await store.delete(OWNER, pid)
        with pytest.raises(ProjectError) as caught:
            await pages.index(pid)
        assert caught.value.status == 404

    run(redis_url, work)


class Model:
    """The model at the test's edge: scores each item of a tree-search prompt by its label, one line per item
    ("1: 9"), and records the prompts."""

    ITEM = re.compile(r"^(\d+)\. (.+?): ", re.MULTILINE)

    def __init__(self, scores: dict[str, int]) -> None:
        self.scores = scores
        self.prompts: list[str] = []

    async def __call__(self, prompt: str, max_tokens: int) -> str:
        self.prompts.append(prompt)
        return "\n".join(f"{n}: {self.scores.get(label, 0)}" for n, label in self.ITEM.findall(prompt))


PATH_TO_SEND = {"dir pkg/": 9, "file pkg/cookies.py": 9, "class Session": 7, "function Session.send": 9}


def test_tree_walk_reaches_the_function_within_its_budgets(redis_url: RedisServer) -> None:
    async def work(store: ProjectStore, pid: str) -> None:
        index = await PageIndex(store, store.settings, embedder=None, complete=None).index(pid)
        query = "where does a session attach its cookies?"

        model = Model(PATH_TO_SEND)
        ranked, calls = await walk(index, query, model, {}, calls=40, depth=6, k=5)
        # project -> pkg/ (its one file needs no score) -> pkg/cookies.py -> Session: three calls, and the sure
        # hit ends the walk
        assert calls == len(model.prompts) == 3
        assert [(where(Hit(index.pieces[i], s, 0)), s) for i, s in ranked] == [
            (("pkg/cookies.py", 17, 19, "Session.send"), 0.9), (("pkg/cookies.py", 11, 19, "Session"), 0.7)]
        assert all(p.startswith(f"A developer looks for the code that answers: {query}") for p in model.prompts)
        assert "1. file README.md: " in model.prompts[0] and "2. dir pkg/: " in model.prompts[0]
        assert "Send the request with the session's cookies attached." in model.prompts[-1]  # its docstring

        for budget, reached in [(1, []), (2, [("pkg/cookies.py", 11, 19, "Session")])]:
            model = Model(PATH_TO_SEND)
            ranked, calls = await walk(index, query, model, {}, calls=budget, depth=6, k=5)
            assert calls == len(model.prompts) == budget
            assert [where(Hit(index.pieces[i], s, 0)) for i, s in ranked] == reached

        model = Model(PATH_TO_SEND)
        ranked, calls = await walk(index, query, model, {}, calls=40, depth=3, k=5)
        assert calls == 2 and [index.pieces[i].qualname for i, _ in ranked] == ["Session"]

        # a model that rates nothing: the walk stops at the top, having found nothing
        model = Model({})
        assert await walk(index, query, model, {}, calls=40, depth=6, k=5) == ([], 1)

    run(redis_url, work)


def test_tree_search_through_the_service_respects_the_configured_call_budget(redis_url: RedisServer) -> None:
    async def work(store: ProjectStore, pid: str) -> None:
        model = Model(PATH_TO_SEND)
        pages = PageIndex(store, store.settings, embedder=None, complete=model)
        found = await pages.search(OWNER, pid, "session cookies", k=5, mode="tree")
        assert found.mode == "tree" and len(model.prompts) == 2
        assert [where(h) for h in found.hits] == [("pkg/cookies.py", 11, 19, "Session")]
        assert pages.metrics.tree_calls._value.get() == 2

    run(redis_url, work, settings(project_tree_calls=2))


def test_context_text_cites_path_and_lines_within_its_bounds(redis_url: RedisServer) -> None:
    async def work(store: ProjectStore, pid: str) -> None:
        pages = PageIndex(store, store.settings, embedder=None, complete=None)
        index = await pages.index(pid)
        found = await pages.search(OWNER, pid, "copy the cookies of the jar into the request", k=10, mode="bm25")
        sources = await store.sources(pid, sorted(PROJECT))
        text, used = context_text(found.hits, sources, max_chars=6000, max_pieces=6)
        assert text.startswith("# pkg/cookies.py:4-8\n" + "\n".join(COOKIES.split("\n")[3:8]))
        headers = re.findall(r"^# (\S+):(\d+)-(\d+)$", text, re.MULTILINE)
        assert headers == [(h.piece.path, str(h.piece.start_line), str(h.piece.end_line)) for h in used]
        assert 1 < len(used) <= 6
        for h in used:
            body = "\n".join(sources[h.piece.path].split("\n")[h.piece.start_line - 1:h.piece.end_line])
            assert f"# {h.piece.path}:{h.piece.start_line}-{h.piece.end_line}\n{body}" in text

        one, [only] = context_text(found.hits, sources, max_chars=6000, max_pieces=1)
        assert only is found.hits[0] and one.count("\n# ") == 0
        for limit in (0, 150, 250, 300, 400, 700):
            small, shown = context_text(found.hits, sources, max_chars=limit, max_pieces=6)
            assert len(small) <= limit, (limit, small)
            assert len(shown) == len(re.findall(r"^# \S+:\d+-\d+$", small, re.MULTILINE))

        # a piece inside one already shown is not shown twice
        session, send = (next(i for i, p in enumerate(index.pieces) if p.qualname == name)
                         for name in ("Session", "Session.send"))
        hits = [Hit(index.pieces[session], 2.0, 2.0), Hit(index.pieces[send], 1.0, 1.0)]
        text, used = context_text(hits, sources, max_chars=6000, max_pieces=6)
        assert used == hits[:1] and text == "# pkg/cookies.py:11-19\n" + "\n".join(COOKIES.split("\n")[10:19])

        context = await pages.context(OWNER, pid, "Write merge_cookies for a request and a jar")
        assert context is not None and context.mode == "bm25"
        assert context.text.startswith("# pkg/cookies.py:4-8\n") and context.top_bm25 > 0
        assert len(context.text) <= store.settings.project_context_chars
        assert await pages.context(OWNER, pid, "zebra quantum") is None

    run(redis_url, work)


def test_no_piece_ends_past_its_file(redis_url: RedisServer) -> None:
    """A citation names lines that exist: a file ending in a newline has no line after it."""

    async def work(store: ProjectStore, pid: str) -> None:
        index = await PageIndex(store, store.settings, embedder=None, complete=None).index(pid)
        metas = await store.metas(pid)
        assert metas["pkg/cookies.py"].lines == 19 and metas["README.md"].lines == 3
        past = [(p.path, p.kind, p.start_line, p.end_line) for p in index.pieces if p.end_line > metas[p.path].lines]
        assert past == []

    run(redis_url, work)


def test_context_text_never_exceeds_max_chars() -> None:
    """The bound holds however the cut falls: mid-line, in a piece with no newline, after earlier pieces."""

    def piece(path: str, end: int) -> Piece:
        return Piece(path=path, start_line=1, end_line=end, kind="function", name="f", qualname="f", signature="",
                     doc="", embed_text="")

    sources = {"lines.py": "\n".join(["y" * 50] * 40), "one.py": "x" * 5000, "short.py": "z = 1\nw = 2"}
    for hits in ([Hit(piece("lines.py", 40), 1.0, 1.0)], [Hit(piece("one.py", 1), 1.0, 1.0)],
                 [Hit(piece("short.py", 2), 1.0, 1.0), Hit(piece("lines.py", 40), 1.0, 1.0),
                  Hit(piece("one.py", 1), 1.0, 1.0)]):
        for limit in range(0, 3000, 13):
            text, used = context_text(hits, sources, max_chars=limit, max_pieces=6)
            assert len(text) <= limit, (limit, [h.piece.path for h in used], len(text))


def test_context_respects_the_configured_size_and_piece_count(redis_url: RedisServer) -> None:
    async def work(store: ProjectStore, pid: str) -> None:
        pages = PageIndex(store, store.settings, embedder=None, complete=None)
        context = await pages.context(OWNER, pid, "cookies request session header jar send")
        assert context is not None and len(context.hits) == 2
        assert len(context.text) <= 600 and context.text.count("# pkg/cookies.py:") >= 1

    run(redis_url, work, settings(project_context_chars=600, project_context_chunks=2))


def test_an_index_without_redis_matches_the_stored_one(redis_url: RedisServer) -> None:
    """``add_file`` (the benchmark's way in) builds the same pieces as a refresh from the store."""

    async def work(store: ProjectStore, pid: str) -> None:
        stored = await PageIndex(store, store.settings, embedder=None, complete=None).index(pid)
        local = ProjectIndex(pid)
        outlines = await store.outlines(pid, sorted(PROJECT))
        for path, text in PROJECT.items():
            local.add_file(path, stored.files[path].sha, text, outlines[path])
        local.rebuild()
        assert local.pieces == stored.pieces
        found = await search(local, "merge_cookies", 1, "bm25", None)
        assert where(found.hits[0]) == ("pkg/cookies.py", 4, 8, "merge_cookies")

    run(redis_url, work)


def test_a_tiny_project_still_finds_the_function_a_query_names() -> None:
    """Two pieces, the query's words in one of them: Okapi's idf is 0 there (a term in half the corpus), which
    would score nothing; the floor keeps the named function first."""
    source = "import re\n\n\ndef slugify_title(title):\n    return '-'.join(re.findall('[a-z]+', title))\n"
    index = ProjectIndex("p_" + "0" * 24)
    index.add_file("pkg/slugs.py", "h", source, parse("pkg/slugs.py", source))
    index.rebuild()
    top = index.bm25_top("slugify_title", 3)
    assert top and index.pieces[top[0][0]].qualname == "slugify_title" and top[0][1] > 0
