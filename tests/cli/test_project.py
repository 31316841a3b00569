"""`atlas project` against a fake llm-proxy on loopback that keeps projects in memory as rag-api does: a first sync
uploads everything, a second uploads nothing, a change uploads only itself, a removal is deleted, what the platform
would refuse is skipped before any upload, and no upload outgrows its batch bound."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from atlas_cli import project
from atlas_cli.main import main
from tests.conftest import ServerThread

KEY = "sk-llm-" + "d" * 43
PID = "p_" + "a" * 24


def error(status: int, message: str, code: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error", "param": None,
                                   "code": code}}, status)


def fake_proxy() -> FastAPI:
    """The project API of one user, in memory; it records every files call's body and size."""
    app = FastAPI()
    app.state.projects = {}  # id -> {"name", "files": {path: content}}
    app.state.uploads = []  # (body bytes, body) of each files call
    app.state.searches = []

    def view(pid: str) -> dict[str, Any]:
        p = app.state.projects[pid]
        return {"id": pid, "object": "project", "name": p["name"], "created": 1, "files": len(p["files"]),
                "bytes": sum(len(c.encode()) for c in p["files"].values()),
                "lines": sum(c.count("\n") for c in p["files"].values()), "version": p["version"],
                "languages": {"python": len(p["files"])}}

    @app.middleware("http")
    async def authorize(request: Request, call_next: Any) -> Any:
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return error(401, "invalid API key")
        pid = request.url.path.split("/")[3:4]  # /v1/projects/{pid}/...
        if pid and pid[0] not in app.state.projects:
            return error(404, f"the project '{pid[0]}' does not exist", "project_not_found")
        return await call_next(request)

    @app.post("/v1/projects", status_code=201)
    async def create(request: Request) -> dict[str, Any]:
        pid = "p_" + f"{len(app.state.projects) + 10:024x}" if app.state.projects else PID
        app.state.projects[pid] = {"name": (await request.json())["name"], "files": {}, "version": 0}
        return view(pid)

    @app.get("/v1/projects")
    async def listing() -> dict[str, Any]:
        return {"object": "list", "data": [view(pid) for pid in app.state.projects]}

    @app.get("/v1/projects/{pid}")
    async def show(pid: str) -> dict[str, Any]:
        return view(pid)

    @app.delete("/v1/projects/{pid}")
    async def delete(pid: str) -> dict[str, Any]:
        del app.state.projects[pid]
        return {"id": pid, "deleted": True}

    @app.post("/v1/projects/{pid}/diff")
    async def diff(pid: str, request: Request) -> dict[str, Any]:
        offered: dict[str, str] = (await request.json())["files"]
        held = {path: hashlib.sha256(c.encode()).hexdigest() for path, c in app.state.projects[pid]["files"].items()}
        return {"upload": sorted(p for p, h in offered.items() if held.get(p) != h),
                "delete": sorted(set(held) - set(offered)),
                "unchanged": sum(1 for p, h in offered.items() if held.get(p) == h)}

    @app.post("/v1/projects/{pid}/files")
    async def files(pid: str, request: Request) -> Any:
        raw = await request.body()
        body = json.loads(raw)
        app.state.uploads.append((len(raw), body))
        if sum(len(f["content"].encode()) for f in body.get("files", [])) > 4 * 1024 * 1024:
            return error(413, "more than 4 MiB of content in one call")
        held = app.state.projects[pid]["files"]
        written = unchanged = deleted = 0
        for f in body.get("files", []):
            if held.get(f["path"]) == f["content"]:
                unchanged += 1
            else:
                held[f["path"]], written = f["content"], written + 1
        for path in body.get("delete", []):
            deleted += held.pop(path, None) is not None
        app.state.projects[pid]["version"] += 1
        return {"written": written, "unchanged": unchanged, "deleted": deleted, "skipped": [],
                "reindexed": [f["path"] for f in body.get("files", [])], "project": view(pid)}

    @app.post("/v1/projects/{pid}/search")
    async def search(pid: str, request: Request) -> dict[str, Any]:
        app.state.searches.append(await request.json())
        return {"mode": "bm25", "results": [
            {"path": "src/app.py", "start_line": 3, "end_line": 9, "kind": "function", "name": "serve",
             "qualname": "App.serve", "score": 4.25, "signature": "def serve(self) -> None"}]}

    return app


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FastAPI, str]]:
    monkeypatch.setenv("ATLAS_API_KEY", KEY)
    app = fake_proxy()
    with ServerThread(app) as server:
        yield app, server.url


def atlas(*argv: str) -> int:
    with pytest.raises(SystemExit) as exit_:
        main(list(argv))
    code = exit_.value.code
    assert isinstance(code, int)
    return code


def tree(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def held(app: FastAPI) -> dict[str, str]:
    files: dict[str, str] = app.state.projects[PID]["files"]
    return files


def test_sync_uploads_what_changed_and_deletes_what_is_gone(proxy: tuple[FastAPI, str], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    app, url = proxy
    root = tree(tmp_path / "myrepo", {"src/app.py": "class App:\n    def serve(self) -> None: ...\n",
                                      "src/util.py": "def helper():\n    return 'é'\n", "README.md": "# demo\n"})
    assert atlas("project", "sync", str(root), "--url", url) == 0
    out, err = capsys.readouterr()
    assert f"created project {PID} ('myrepo')" in err
    assert out.strip() == f"{PID}: 3 uploaded, 0 deleted, 0 unchanged, 0 skipped"
    assert held(app) == {"src/app.py": "class App:\n    def serve(self) -> None: ...\n",
                         "src/util.py": "def helper():\n    return 'é'\n", "README.md": "# demo\n"}

    # the same tree again, found by its name: nothing to upload, no files call at all
    calls = len(app.state.uploads)
    assert atlas("project", "sync", str(root), "--url", url) == 0
    assert capsys.readouterr().out.strip() == f"{PID}: 0 uploaded, 0 deleted, 3 unchanged, 0 skipped"
    assert len(app.state.uploads) == calls and len(app.state.projects) == 1

    (root / "src" / "util.py").write_text("def helper():\n    return 'changed'\n")
    (root / "README.md").unlink()
    assert atlas("project", "sync", str(root), "--project", PID, "--url", url) == 0
    assert capsys.readouterr().out.strip() == f"{PID}: 1 uploaded, 1 deleted, 1 unchanged, 0 skipped"
    _, last = app.state.uploads[-1]
    assert [f["path"] for f in last["files"]] == ["src/util.py"] and last["delete"] == ["README.md"]
    assert set(held(app)) == {"src/app.py", "src/util.py"}


def test_links_binaries_vendored_and_vcs_files_are_never_uploaded(proxy: tuple[FastAPI, str], tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    app, url = proxy
    outside = tree(tmp_path / "outside", {"secret.txt": "do not upload\n"})
    root = tree(tmp_path / "repo", {"main.py": "print('hi')\n", "logo.png": b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR",
                                    "node_modules/lib/index.js": "module.exports = 1;\n",
                                    ".git/config": "[core]\n", "latin1.txt": "caf\xe9\n".encode("latin-1"),
                                    "huge.py": "x = 1\n" * 200_000, "yarn.lock": "# lock\n"})
    os.symlink(outside / "secret.txt", root / "linked.txt")
    os.symlink(outside, root / "linked_dir")
    assert atlas("project", "sync", str(root), "--name", "demo", "--url", url) == 0
    out, err = capsys.readouterr()
    assert set(held(app)) == {"main.py"}
    assert out.strip() == f"{PID}: 1 uploaded, 0 deleted, 0 unchanged, 7 skipped"
    for name in ("linked.txt", "linked_dir", "logo.png", "node_modules/", "latin1.txt", "huge.py", "yarn.lock"):
        assert f"skipped {name}: " in err, name
    assert "symbolic link" in err and ".git" not in err and "secret" not in json.dumps(app.state.uploads)


def test_uploads_are_batched_under_the_bound(proxy: tuple[FastAPI, str], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    app, url = proxy
    # 12 files of 450 KB, 900 KB each as JSON (a quote is escaped): 5.4 MB of content, twice that as JSON
    files: dict[str, str | bytes] = {f"pkg/m{i:02}.py": f"s{i} = '" + '"' * 450_000 + "'\n" for i in range(12)}
    root = tree(tmp_path / "big", files)
    assert atlas("project", "sync", str(root), "--url", url) == 0
    assert capsys.readouterr().out.strip().endswith("12 uploaded, 0 deleted, 0 unchanged, 0 skipped")
    sizes = [size for size, _ in app.state.uploads]
    assert len(sizes) > 1 and max(sizes) <= 4 * 1024 * 1024
    assert sorted(f["path"] for _, body in app.state.uploads for f in body["files"]) == sorted(files)


def test_batches_keep_each_body_under_the_limit_and_lose_nothing() -> None:
    items = [(f"f{i}.py", "x" * size) for i, size in enumerate([10, 500, 300, 900, 2_000, 5])]
    bodies = list(project.batches(items, ["gone.py", "old.py"], limit=1_000))
    for files, delete in bodies:
        size = sum(len(json.dumps(f).encode()) + 1 for f in files) + sum(len(json.dumps(d)) + 1 for d in delete)
        assert size <= 1_000 or (len(files) == 1 and not delete)  # a file over the bound alone goes alone
    assert [f["path"] for files, _ in bodies for f in files] == [name for name, _ in items]
    assert [d for _, delete in bodies for d in delete] == ["gone.py", "old.py"]
    counted = list(project.batches([(f"{i}.py", "") for i in range(7)], ["x.py"], most=3))
    assert [len(files) + len(delete) for files, delete in counted] == [3, 3, 2]
    assert list(project.batches([], [])) == []


def test_create_list_show_search_delete(proxy: tuple[FastAPI, str], capsys: pytest.CaptureFixture[str]) -> None:
    app, url = proxy
    assert atlas("project", "create", "demo", "--url", url) == 0
    assert capsys.readouterr().out.strip() == PID
    assert atlas("project", "list", "--url", url) == 0
    assert capsys.readouterr().out.startswith(f"{PID}  demo  0 files")
    assert atlas("project", "show", PID, "--json", "--url", url) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "demo"
    assert atlas("project", "search", PID, "where is serve", "-k", "3", "--mode", "bm25", "--url", url) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "src/app.py:3-9  App.serve  4.250" and "1 results (bm25)" in err
    assert app.state.searches == [{"query": "where is serve", "k": 3, "mode": "bm25"}]
    assert atlas("project", "delete", PID, "--url", url) == 0
    assert app.state.projects == {}


def test_errors_print_the_platforms_message_and_exit_3(proxy: tuple[FastAPI, str], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    _, url = proxy
    assert atlas("project", "show", "p_" + "f" * 24, "--url", url) == 3
    assert "answered 404: the project 'p_ffff" in capsys.readouterr().err
    root = tree(tmp_path / "r", {"a.py": "a = 1\n"})
    assert atlas("project", "sync", str(root), "--project", "p_" + "e" * 24, "--url", url) == 3
    assert "project_not_found" not in (err := capsys.readouterr().err) and "does not exist" in err
    monkeypatch.setenv("ATLAS_API_KEY", "sk-llm-wrong")
    assert atlas("project", "list", "--url", url) == 3
    assert "answered 401: invalid API key" in capsys.readouterr().err
    assert atlas("project", "sync", str(tmp_path / "missing"), "--url", url) == 2
    assert "is not a directory" in capsys.readouterr().err
