"""The project store on the real test Redis (a bytes client, as the services use): projects are their owner's
alone (anyone else gets 404, as for an id that does not exist), a refused write (a hostile path anywhere in the
batch, a file or project too large, the platform full) writes nothing at all, an unchanged tree writes nothing,
``diff`` names exactly what a sync must send, and ``delete`` leaves no key behind and gives its bytes back."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import numpy as np
import pytest
from redis.asyncio import Redis

from atlas_core.settings import load_settings
from atlas_pageindex.service import PageIndex
from atlas_pageindex.settings import PageIndexSettings
from atlas_pageindex.store import PENDING_KEY, TOTAL_KEY, ProjectError, ProjectStore, key, sha256, user_key
from tests.conftest import RedisServer

T = TypeVar("T")
OWNER, OTHER = "7", "8"
PY = '"""Cookies."""\n\n\ndef merge(a, b):\n    """Merge two jars."""\n    return {**a, **b}\n'
GO = "package main\n\n// Add sums.\nfunc Add(a int, b int) int {\n\treturn a + b\n}\n"


def settings(**overrides: object) -> PageIndexSettings:
    base: dict[str, object] = {"project_max_per_user": 3, "project_max_file_bytes": 2048,
                               "project_max_bytes": 8192} | overrides
    return load_settings(PageIndexSettings, environ={f"ATLAS_{k.upper()}": str(v) for k, v in base.items()},
                         read_conf_file=False)


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[RedisServer]:
    with redis_server.client() as client:
        client.flushdb()  # tests share the server
    yield redis_server


def run(server: RedisServer, work: Callable[[ProjectStore], Awaitable[T]],
        config: PageIndexSettings | None = None) -> T:
    """``work`` on a store over a fresh bytes client (``decode_responses`` off, as in the services)."""

    async def main() -> T:
        client = Redis.from_url(server.url, password=server.password)
        try:
            return await work(ProjectStore(client, config or settings()))
        finally:
            await client.aclose()

    return asyncio.run(main())


async def snapshot(redis: Redis) -> dict[bytes, Any]:
    """Every project key and its whole value: a refused request must leave this exactly as it was."""
    out: dict[bytes, Any] = {}
    async for name in redis.scan_iter(match="atlas:proj:*"):
        kind = await redis.type(name)
        if kind == b"hash":
            out[name] = await redis.hgetall(name)
        elif kind == b"set":
            out[name] = await redis.smembers(name)
        else:
            out[name] = await redis.get(name)
    return out


async def refused(store: ProjectStore, work: Awaitable[object], status: int, param: str | None) -> ProjectError:
    """``work`` raises ``status`` naming ``param``, and no project key changed."""
    before = await snapshot(store.redis)
    with pytest.raises(ProjectError) as caught:
        await work
    assert (caught.value.status, caught.value.param) == (status, param), caught.value.message
    assert await snapshot(store.redis) == before
    return caught.value


def files(by_path: dict[str, str]) -> list[dict[str, str]]:
    return [{"path": p, "content": c} for p, c in by_path.items()]


def test_create_list_get_write_delete(redis_url: RedisServer) -> None:
    async def work(store: ProjectStore) -> None:
        first = await store.create(OWNER, "  demo  ")
        assert re.fullmatch(r"p_[0-9a-f]{24}", first.id)
        assert (first.owner, first.name, first.version, first.files, first.bytes) == (OWNER, "demo", 0, 0, 0)
        second = await store.create(OWNER, "other")
        assert [p.id for p in await store.owned(OWNER)] == sorted([first.id, second.id])  # same second: by id
        for bad in ("", "   ", None, 3, "x" * 201, "tab\there"):
            await refused(store, store.create(OWNER, bad), 400, "name")

        result = await store.write(OWNER, first.id, [{"path": "pkg/cookies.py", "content": PY},
                                                     {"path": "cmd/add.go", "content": GO}], None)
        assert (result.written, result.unchanged, result.deleted, result.skipped) == (
            ["cmd/add.go", "pkg/cookies.py"], 0, 0, [])
        project = await store.get(OWNER, first.id)
        assert (project.version, project.files, project.lines) == (1, 2, PY.count("\n") + GO.count("\n"))
        assert project.bytes == len(PY) + len(GO) == int(await store.redis.get(TOTAL_KEY) or 0)
        assert project.languages == {"go": 1, "python": 1}
        assert project.public()["id"] == first.id and "owner" not in project.public()
        assert await store.sources(first.id, ["pkg/cookies.py", "nope.py"]) == {"pkg/cookies.py": PY}
        [(kind, name, start, end)] = [(n.kind, n.qualname, n.start_line, n.end_line)
                                      for n in (await store.outlines(first.id, ["pkg/cookies.py"]))[
                                          "pkg/cookies.py"].nodes]
        assert (kind, name, start, end) == ("function", "merge", 4, 6)
        assert (await store.metas(first.id))["cmd/add.go"].sha == sha256(GO)

        await store.delete(OWNER, first.id)
        await refused(store, store.get(OWNER, first.id), 404, "project_id")
        assert [p.id for p in await store.owned(OWNER)] == [second.id]

    run(redis_url, work)


def test_another_owner_gets_404_for_everything_and_changes_nothing(redis_url: RedisServer) -> None:
    async def work(store: ProjectStore) -> None:
        project = await store.create(OWNER, "mine")
        await store.write(OWNER, project.id, files({"pkg/cookies.py": PY}), [])
        pid = project.id
        pages = PageIndex(store, store.settings, embedder=None, complete=None)
        for attempt in (store.get(OTHER, pid), store.diff(OTHER, pid, {"a.py": "0" * 64}),
                        store.write(OTHER, pid, files({"a.py": "x = 1\n"}), []),
                        store.write(OTHER, pid, [], ["pkg/cookies.py"]),
                        store.delete(OTHER, pid), pages.search(OTHER, pid, "merge", k=5, mode="bm25")):
            error = await refused(store, attempt, 404, "project_id")
            assert "among yours" in error.message  # the same answer as for an id that does not exist
        assert await store.owned(OTHER) == []
        for unknown in ("p_" + "0" * 24, "p_" + "A" * 24, "../" + pid, pid + ":files", "", "x" * 5000):
            await refused(store, store.get(OWNER, unknown), 404, "project_id")
        assert (await store.get(OWNER, pid)).files == 1  # the owner still has it all

    run(redis_url, work)


HOSTILE: list[object] = ["../x", "/etc/passwd", "a/../../b", "x\x00y", "a" * 600, ".git/config", "sub/.GIT/hooks",
                         "a\\b", "~/x", 42, None, ["a.py"]]


@pytest.mark.parametrize("path", HOSTILE, ids=repr)
@pytest.mark.parametrize("position", [0, 2])
def test_a_hostile_path_anywhere_in_a_batch_is_400_and_writes_nothing(redis_url: RedisServer, path: object,
                                                                      position: int) -> None:
    async def work(store: ProjectStore) -> None:
        pid = (await store.create(OWNER, "p")).id
        await store.write(OWNER, pid, files({"kept.py": "x = 1\n"}), [])
        fine: list[dict[str, object]] = [{"path": "fine.py", "content": "a = 1\n"},
                                         {"path": "pkg/fine.go", "content": GO}]
        batch = [*fine[:position], {"path": path, "content": "import os\nos.system('boom')\n"}]
        error = await refused(store, store.write(OWNER, pid, batch, []), 400, f"files.{position}.path")
        assert f"files.{position}.path" in error.message
        assert (await store.get(OWNER, pid)).version == 1
        assert list(await store.metas(pid)) == ["kept.py"]
        # the hostile path was never a key, nor a field of any hash
        for part in ("files", "src", "outline"):
            assert await store.redis.hkeys(key(pid, part)) == [b"kept.py"]
        names = [k async for k in store.redis.scan_iter(match="*")]
        assert all(b"passwd" not in k and b".." not in k and b"boom" not in k for k in names)

    run(redis_url, work)


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", ".git/config", 7])
def test_a_hostile_path_to_delete_or_diff_is_400(redis_url: RedisServer, path: object) -> None:
    async def work(store: ProjectStore) -> None:
        pid = (await store.create(OWNER, "p")).id
        await store.write(OWNER, pid, files({"kept.py": "x = 1\n"}), [])
        await refused(store, store.write(OWNER, pid, files({"new.py": "y = 2\n"}), ["kept.py", path]), 400, "delete.1")
        if isinstance(path, str):
            error = await refused(store, store.diff(OWNER, pid, {"kept.py": sha256("x = 1\n"), path: "0" * 64}),
                                  400, f"files.{path}")
            assert error.message.startswith(f"files.{path}")
        assert list(await store.metas(pid)) == ["kept.py"]

    run(redis_url, work)


def test_malformed_requests_are_400_naming_the_field(redis_url: RedisServer) -> None:
    async def work(store: ProjectStore) -> None:
        pid = (await store.create(OWNER, "p")).id
        ok = {"path": "a.py", "content": "a = 1\n"}
        for batch, delete, param in [
            ({"a.py": "x"}, [], "files"), ([ok], "a.py", "delete"), (["a.py"], [], "files.0"),
            ([ok, {"path": "b.py", "content": "b", "mode": "0755"}], [], "files.1"),
            ([{"path": "b.py", "content": b"binary"}], [], "files.0.content"),
            ([{"path": "b.py", "content": "a\x00b"}], [], "files.0.content"),
            ([{"path": "b.py", "content": "\ud800"}], [], "files.0.content"),
            ([ok, {"path": "./a.py", "content": "other\n"}], [], "files.1.path"),  # the same file twice
            ([ok], ["a.py"], "delete"),  # written and deleted at once
        ]:
            await refused(store, store.write(OWNER, pid, batch, delete), 400, param)
        await refused(store, store.diff(OWNER, pid, ["a.py"]), 400, "files")
        await refused(store, store.diff(OWNER, pid, {"a.py": "A" * 64}), 400, "files.a.py")
        assert (await store.get(OWNER, pid)).version == 0

    run(redis_url, work)


def test_an_oversize_file_is_413_and_nothing_of_its_batch_is_written(redis_url: RedisServer) -> None:
    async def work(store: ProjectStore) -> None:
        pid = (await store.create(OWNER, "p")).id
        big = "x" * 2049
        await refused(store, store.write(OWNER, pid, files({"a.py": "a = 1\n", "big.txt": big}), []), 413,
                      "files.1.content")
        wide = "é" * 1025  # 1,025 characters but 2,050 bytes: the bound is on UTF-8 bytes
        await refused(store, store.write(OWNER, pid, files({"wide.txt": wide}), []), 413, "files.0.content")
        assert (await store.get(OWNER, pid)).version == 0 and await store.metas(pid) == {}
        at_limit = "y" * 2048
        assert (await store.write(OWNER, pid, files({"edge.txt": at_limit}), [])).written == ["edge.txt"]

    run(redis_url, work)


def test_the_project_byte_bound_counts_what_the_write_changes(redis_url: RedisServer) -> None:
    async def work(store: ProjectStore) -> None:
        pid = (await store.create(OWNER, "p")).id
        chunk = ("z" * 99 + "\n") * 20  # 2,000 bytes
        await store.write(OWNER, pid, [{"path": f"f{i}.txt", "content": chunk} for i in range(4)], [])
        assert (await store.get(OWNER, pid)).bytes == 8000
        error = await refused(store, store.write(OWNER, pid, files({"small.py": "s = 1\n" * 40}), []), 413, "files")
        assert "8240 bytes" in error.message and "ATLAS_PROJECT_MAX_BYTES" in error.message
        # a smaller replacement makes room in the same request
        result = await store.write(OWNER, pid, files({"f0.txt": "tiny\n", "small.py": "s = 1\n" * 40}), [])
        assert result.written == ["f0.txt", "small.py"]
        assert (await store.get(OWNER, pid)).bytes == 6000 + 5 + 240 == int(await store.redis.get(TOTAL_KEY) or 0)
        # deleting frees bytes too
        result = await store.write(OWNER, pid, [], ["f1.txt", "missing.txt"])
        assert (result.deleted, (await store.get(OWNER, pid)).bytes) == (1, 4245)

    run(redis_url, work)


def test_the_platform_total_is_507_and_writes_nothing(redis_url: RedisServer) -> None:
    async def work(store: ProjectStore) -> None:
        one = (await store.create(OWNER, "one")).id
        two = (await store.create(OTHER, "two")).id
        half = ("q" * 999 + "\n") * 2  # 2,000 bytes
        await store.write(OWNER, one, [{"path": f"{i}.txt", "content": half} for i in range(3)], [])
        error = await refused(store, store.write(OTHER, two, files({"a.txt": half, "b.txt": half}), []), 507, None)
        assert "ATLAS_PROJECT_MAX_TOTAL_BYTES" in error.message
        await store.delete(OWNER, one)
        assert int(await store.redis.get(TOTAL_KEY) or 0) == 0
        assert (await store.write(OTHER, two, files({"a.txt": half, "b.txt": half}), [])).written == ["a.txt", "b.txt"]

    run(redis_url, work, settings(project_max_total_bytes=9000))


def test_the_per_user_project_count_is_bounded(redis_url: RedisServer) -> None:
    async def work(store: ProjectStore) -> None:
        mine = [await store.create(OWNER, f"p{i}") for i in range(3)]
        error = await refused(store, store.create(OWNER, "one too many"), 409, None)
        assert "ATLAS_PROJECT_MAX_PER_USER" in error.message
        await store.create(OTHER, "theirs")  # the bound is per user
        await store.delete(OWNER, mine[0].id)
        await store.create(OWNER, "room again")
        assert len(await store.owned(OWNER)) == 3 and len(await store.owned(OTHER)) == 1

    run(redis_url, work)


def test_rewriting_an_unchanged_tree_writes_nothing(redis_url: RedisServer) -> None:
    async def work(store: ProjectStore) -> None:
        pid = (await store.create(OWNER, "p")).id
        tree = files({"pkg/cookies.py": PY, "cmd/add.go": GO})
        await store.write(OWNER, pid, tree, [])
        assert await store.pending() == pid and await store.pending() is None  # the sync asked for embeddings
        before = await snapshot(store.redis)
        again = [{"path": "./" + f["path"].replace("/", "//"), "content": f["content"]} for f in tree]
        result = await store.write(OWNER, pid, again, [])
        assert (result.written, result.unchanged, result.deleted) == ([], 2, 0)
        assert await snapshot(store.redis) == before  # not even the version moved, nor the pending set
        assert (await store.get(OWNER, pid)).version == 1

    run(redis_url, work)


def test_skipped_files_are_reported_and_not_held(redis_url: RedisServer) -> None:
    async def work(store: ProjectStore) -> None:
        pid = (await store.create(OWNER, "p")).id
        result = await store.write(OWNER, pid, [
            {"path": "node_modules/left-pad/index.js", "content": "module.exports = 1;\n"},
            {"path": "package-lock.json", "content": "{}\n"},
            {"path": "app.min.js", "content": "var a=1;\n"},
            {"path": "app.py", "content": "a = 1\n"}], [])
        assert result.written == ["app.py"]
        assert [s["path"] for s in result.skipped] == ["node_modules/left-pad/index.js", "package-lock.json",
                                                       "app.min.js"]
        assert "node_modules" in result.skipped[0]["reason"] and list(await store.metas(pid)) == ["app.py"]

    run(redis_url, work)


def test_diff_names_changed_new_and_deleted_paths(redis_url: RedisServer) -> None:
    async def work(store: ProjectStore) -> None:
        pid = (await store.create(OWNER, "p")).id
        await store.write(OWNER, pid, files({"a.py": "a = 1\n", "b.py": "b = 1\n", "d.py": "d = 1\n"}), [])
        manifest = {"a.py": sha256("a = 1\n"), "./b.py": sha256("b = 2\n"), "new/c.py": sha256("c = 1\n")}
        assert await store.diff(OWNER, pid, manifest) == {"upload": ["b.py", "new/c.py"], "delete": ["d.py"],
                                                          "unchanged": 1}
        result = await store.write(OWNER, pid, files({"b.py": "b = 2\n", "new/c.py": "c = 1\n"}), ["d.py"])
        assert (result.written, result.unchanged, result.deleted) == (["b.py", "new/c.py"], 0, 1)
        for part in ("files", "src", "outline"):
            assert sorted(await store.redis.hkeys(key(pid, part))) == [b"a.py", b"b.py", b"new/c.py"]
        assert await store.diff(OWNER, pid, manifest) == {"upload": [], "delete": [], "unchanged": 3}
        project = await store.get(OWNER, pid)
        assert (project.version, project.files, project.lines, project.languages) == (2, 3, 3, {"python": 3})

    run(redis_url, work)


def test_a_path_deleted_twice_in_one_request_is_counted_once(redis_url: RedisServer) -> None:
    async def work(store: ProjectStore) -> None:
        pid = (await store.create(OWNER, "p")).id
        await store.write(OWNER, pid, files({"a.py": "a = 1\n", "b.py": "b = 22\n"}), [])
        result = await store.write(OWNER, pid, [], ["a.py", "./a.py"])
        project = await store.get(OWNER, pid)
        assert result.deleted == 1
        assert (project.files, project.bytes, project.lines, project.languages) == (1, 7, 1, {"python": 1})
        assert int(await store.redis.get(TOTAL_KEY) or 0) == 7

    run(redis_url, work)


def test_a_sync_in_progress_refuses_another_with_409(redis_url: RedisServer) -> None:
    async def work(store: ProjectStore) -> None:
        pid = (await store.create(OWNER, "p")).id
        await store.redis.set(key(pid, "lock"), "1", px=60_000)
        await refused(store, store.write(OWNER, pid, files({"a.py": "a = 1\n"}), []), 409, None)
        await store.redis.delete(key(pid, "lock"))
        assert (await store.write(OWNER, pid, files({"a.py": "a = 1\n"}), [])).written == ["a.py"]
        assert await store.redis.exists(key(pid, "lock")) == 0  # a finished write lets go

    run(redis_url, work)


def test_delete_removes_every_key_of_the_project_and_gives_its_bytes_back(redis_url: RedisServer) -> None:
    async def work(store: ProjectStore) -> None:
        gone = (await store.create(OWNER, "gone")).id
        kept = (await store.create(OWNER, "kept")).id
        await store.write(OWNER, gone, files({"pkg/cookies.py": PY, "cmd/add.go": GO}), [])
        await store.write(OWNER, kept, files({"a.py": "a = 1\n"}), [])
        await store.put_vectors(gone, {"k": np.ones(4, dtype=np.float32)})
        await store.put_summary(gone, "file:x", "Sums numbers.")
        await store.redis.set(key(gone, "lock"), "1", px=60_000)  # a crashed sync's lock
        assert len([k async for k in store.redis.scan_iter(match=f"atlas:proj:{gone}*")]) == 7
        assert int(await store.redis.get(TOTAL_KEY) or 0) == len(PY) + len(GO) + 6

        await store.delete(OWNER, gone)
        assert [k async for k in store.redis.scan_iter(match=f"atlas:proj:{gone}*")] == []
        assert int(await store.redis.get(TOTAL_KEY) or 0) == 6
        assert await store.redis.smembers(user_key(OWNER)) == {kept.encode()}
        assert not await store.redis.sismember(PENDING_KEY, gone)
        # the background finishing late must not bring the project's keys back
        await store.put_vectors(gone, {"k": np.ones(4, dtype=np.float32)})
        await store.put_summary(gone, "file:x", "Sums numbers.")
        assert [k async for k in store.redis.scan_iter(match=f"atlas:proj:{gone}*")] == []
        assert (await store.get(OWNER, kept)).files == 1
        await refused(store, store.delete(OWNER, gone), 404, "project_id")

    run(redis_url, work)


def test_a_delete_during_a_write_leaves_no_key_behind(redis_url: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The owner deletes the project while a sync of it is between its checks and its transaction. The delete may
    win (then the sync must not bring back any key, ownerless and so never deletable, nor any byte of the total)
    or be refused as busy (then the project is whole); either way the store stays consistent."""

    async def work(store: ProjectStore) -> None:
        pid = (await store.create(OWNER, "p")).id
        hmget = store.redis.hmget
        deleted: list[bool] = []

        async def interleaved(name: str, keys: list[str]) -> list[Any]:
            if name == key(pid) and not deleted:  # the write has checked the owner and holds its lock
                try:
                    await store.delete(OWNER, pid)
                    deleted.append(True)
                except ProjectError as exc:
                    assert exc.status == 409
                    deleted.append(False)
            return await hmget(name, keys)

        monkeypatch.setattr(store.redis, "hmget", interleaved)
        with contextlib.suppress(ProjectError):  # the write may fail (404, 409); what it leaves is the point
            await store.write(OWNER, pid, files({"a.py": "a = 1\n"}), [])
        monkeypatch.undo()
        assert deleted, "the delete never ran during the write"
        left = [k async for k in store.redis.scan_iter(match=f"atlas:proj:{pid}*")]
        if deleted[0]:
            assert left == [] and int(await store.redis.get(TOTAL_KEY) or 0) == 0
        else:
            project = await store.get(OWNER, pid)
            assert int(await store.redis.get(TOTAL_KEY) or 0) == project.bytes == sum(
                m.size for m in (await store.metas(pid)).values())

    run(redis_url, work)
