"""``atlas project``: PageIndex projects (code retrieval) through the platform's ``/v1/projects``.

    atlas project sync ~/src/myrepo                 create project "myrepo" the first time, then upload what changed
    atlas project search p_0123... "where are refresh tokens rotated" -k 5
    atlas project create NAME | list | show ID | delete ID

``sync`` walks the directory without following symbolic links, hashes each file (sha256 of its bytes), asks the
platform which files differ (``/diff``), then uploads those in batches of at most ``BATCH_BYTES`` and deletes the
files that are gone. Files the platform would refuse are skipped here, with the reason, so no upload is wasted:
symbolic links, files over 1 MiB, whatever ``atlas_pageindex.paths`` refuses (``clean_path``: hostile names;
``skip_reason``: binary, non-UTF-8, lock and minified files), and vendored or generated directories
(``SKIPPED_DIRS``: node_modules, .venv, build, ...), which are not walked at all, nor are VCS folders (.git, .hg,
.svn). ``.gitignore`` is not read: ``--exclude GLOB`` leaves out anything else.

Exit status: 0 done, 2 a usage error (no API key, a directory that cannot be read), 3 the platform unreachable or
answering an error (its message is printed).
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from atlas_cli.solve import TIMEOUT, SolveRejected, _count, _error_message, _say, api_key, base_url, client_arguments
from atlas_core.settings import SettingsError
from atlas_pageindex.paths import SKIPPED_DIRS, PathRefused, clean_path, skip_reason
from atlas_pageindex.settings import SEARCH_MODES, PageIndexSettings

# rag-api refuses a whole files call that holds a larger file (413): such a file is skipped here, unread.
MAX_FILE_BYTES: int = PageIndexSettings.model_fields["project_max_file_bytes"].default
MAX_BATCH_FILES = 5_000  # well under what one files call may name (ATLAS_PROJECT_MAX_FILES, 20 000 by default)
# A files call should carry at most ~4 MiB of content (rag-api's bound; the proxy's body limit is above it): counting
# each entry as JSON-encoded keeps the whole body under it too, with room left for the list's punctuation.
BATCH_BYTES = 4 * 1024 * 1024 - 64 * 1024
VCS_DIRS = frozenset({".git", ".hg", ".svn", ".bzr", "_darcs", ".jj"})  # never code, often huge: left unwalked
RETRIES = 3  # a 429 or 503 with Retry-After is waited out this often before the sync gives up
MAX_WAIT_S = 30.0


@dataclass
class LocalTree:
    """What ``sync`` found under the directory: each file's sha256 by its project path, and what it left out."""

    root: Path
    hashes: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # project path → the file's path under root
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


def scan(root: Path, exclude: list[str] | None = None) -> LocalTree:
    """Walk ``root`` (symbolic links are reported, never followed; VCS folders are not walked) and hash every file
    the platform would accept."""
    local = LocalTree(root)
    for rel, entry in _walk(root, "", exclude or []):
        if rel.endswith("/"):
            local.skipped.append((rel, f"vendored or generated directory {entry.name!r} (not walked)"))
            continue
        if entry.is_symlink():
            local.skipped.append((rel, "symbolic link (not followed)"))
            continue
        if not entry.is_file(follow_symlinks=False):
            local.skipped.append((rel, "not a regular file"))
            continue
        try:
            name, data = _read(root, rel)
        except _Skip as exc:
            local.skipped.append((rel, str(exc)))
            continue
        local.hashes[name] = hashlib.sha256(data).hexdigest()
        local.sources[name] = rel
    return local


def _walk(root: Path, prefix: str, exclude: list[str]) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """Each entry under ``root/prefix`` but directories, by name; a skipped directory as ``"path/"``."""
    try:
        with os.scandir(root / prefix if prefix else root) as listing:
            entries = sorted(listing, key=lambda e: e.name)
    except OSError as exc:
        if not prefix:
            raise SettingsError(f"cannot read the directory {root}: {exc.strerror or exc}") from None
        _say(f"skipped {prefix}/: {exc.strerror or exc}")
        return
    for entry in entries:
        rel = f"{prefix}/{entry.name}" if prefix else entry.name
        if any(fnmatch.fnmatch(rel, g) or fnmatch.fnmatch(entry.name, g) for g in exclude):
            continue
        if entry.is_dir(follow_symlinks=False):
            if entry.name in VCS_DIRS:
                continue
            if entry.name in SKIPPED_DIRS:  # every file under it would be skipped: say so once, read none
                yield f"{rel}/", entry
            else:
                yield from _walk(root, rel, exclude)
            continue
        yield rel, entry


class _Skip(Exception):
    """A file left out, with the reason."""


def _read(root: Path, rel: str) -> tuple[str, bytes]:
    """The file's project path (as the platform cleans it) and bytes, exactly as the platform will hash them;
    ``_Skip`` when it would refuse the file."""
    try:
        path = clean_path(rel)
    except PathRefused as exc:
        raise _Skip(str(exc)) from None
    try:
        # O_NOFOLLOW: the file was not a link when listed; it must not have become one since
        fd = os.open(root / rel, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise _Skip(f"cannot read it: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise _Skip(f"larger than {MAX_FILE_BYTES} bytes, the most a project takes")
    reason = skip_reason(path, data)
    if reason is not None:
        raise _Skip(reason)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise _Skip("not UTF-8 text") from None
    return path, data


def batches(items: list[tuple[str, str]], deletions: list[str], limit: int = BATCH_BYTES,
            most: int = MAX_BATCH_FILES) -> Iterator[tuple[list[dict[str, str]], list[str]]]:
    """``(files, delete)`` bodies of at most ``limit`` bytes each, as JSON-encoded (a single file larger than
    that, still under the per-file bound, goes alone), naming at most ``most`` paths. Deletions ride along with
    the first uploads."""
    files: list[dict[str, str]] = []
    delete: list[str] = []
    size = 0
    entries: list[tuple[str, Any]] = [("delete", n) for n in deletions]
    entries += [("files", {"path": n, "content": c}) for n, c in items]
    for kind, entry in entries:
        cost = len(json.dumps(entry, ensure_ascii=False).encode()) + 1
        if (size + cost > limit or len(files) + len(delete) >= most) and (files or delete):
            yield files, delete
            files, delete, size = [], [], 0
        (delete if kind == "delete" else files).append(entry)
        size += cost
    if files or delete:
        yield files, delete


class ProjectClient:
    """The platform's ``/v1/projects`` with one connection pool; errors become ``SolveRejected`` (exit 3)."""

    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self._http = httpx.Client(timeout=TIMEOUT, headers={"Authorization": f"Bearer {key}"})

    def __enter__(self) -> ProjectClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def call(self, method: str, path: str, body: Any = None) -> Any:
        content = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json"} if content is not None else {}
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._http.request(method, f"{self.url}{path}", content=content, headers=headers)
            except httpx.ConnectError:
                raise SolveRejected(f"llm-proxy is not reachable at {self.url}: is ATLAS up (`atlas status`)?"
                                    ) from None
            except httpx.HTTPError as exc:
                raise SolveRejected(f"the answer from {self.url} broke off ({type(exc).__name__})") from None
            wait = _retry_after(response)
            if wait is not None and attempt <= RETRIES:
                _say(f"the platform answered {response.status_code} ({_error_message(response)}); retrying in "
                     f"{wait:g} s")
                time.sleep(wait)
                continue
            if response.status_code >= 400:
                raise SolveRejected(f"the platform answered {response.status_code}: {_error_message(response)}")
            return response.json()


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait before asking again: only for a 429 or 503 that says when (a limit, a busy service)."""
    if response.status_code not in (429, 503):
        return None
    try:
        wait = float(response.headers.get("retry-after", ""))
    except ValueError:
        return None
    return wait if 0 <= wait <= MAX_WAIT_S else None


@dataclass
class SyncSummary:
    uploaded: int = 0
    deleted: int = 0
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def line(self) -> str:
        return (f"{self.uploaded} uploaded, {self.deleted} deleted, {self.unchanged} unchanged, "
                f"{len(self.skipped)} skipped")


def find_or_create(client: ProjectClient, name: str) -> tuple[str, bool]:
    """The id of the caller's project named ``name`` (created when there is none), and whether it was created."""
    named = [p for p in client.call("GET", "/v1/projects")["data"] if p.get("name") == name]
    if len(named) > 1:
        ids = ", ".join(str(p["id"]) for p in named)
        raise SettingsError(f"several of your projects are named '{name}' ({ids}): choose one with --project")
    if named:
        return str(named[0]["id"]), False
    return str(client.call("POST", "/v1/projects", {"name": name})["id"]), True


def sync(client: ProjectClient, project_id: str, local: LocalTree, limit: int = BATCH_BYTES) -> SyncSummary:
    """Make the project hold exactly the files of ``local``: upload what differs, delete what is gone."""
    summary = SyncSummary(skipped=list(local.skipped))
    plan = client.call("POST", f"/v1/projects/{project_id}/diff", {"files": local.hashes})
    summary.unchanged = int(plan.get("unchanged", 0))
    uploads: list[tuple[str, str]] = []
    for name in plan.get("upload", []):
        if name not in local.sources:
            continue  # the platform asked for a file this scan did not offer: nothing to send
        try:
            uploads.append((name, _read(local.root, local.sources[name])[1].decode("utf-8")))
        except _Skip as exc:  # changed since the scan
            summary.skipped.append((name, str(exc)))
    for files, delete in batches(uploads, [str(d) for d in plan.get("delete", [])], limit):
        body: dict[str, Any] = {"files": files} | ({"delete": delete} if delete else {})
        answer = client.call("POST", f"/v1/projects/{project_id}/files", body)
        summary.uploaded += int(answer.get("written", 0))
        summary.unchanged += int(answer.get("unchanged", 0))
        summary.deleted += int(answer.get("deleted", 0))
        summary.skipped += [(str(s.get("path")), str(s.get("reason"))) for s in answer.get("skipped", [])]
    return summary


def describe(project: dict[str, Any]) -> str:
    languages = ", ".join(f"{lang} {n}" for lang, n in sorted((project.get("languages") or {}).items()))
    return (f"{project['id']}  {project.get('name')}  {project.get('files', 0)} files, {project.get('lines', 0)} "
            f"lines, version {project.get('version', 0)}" + (f"; {languages}" if languages else ""))


def run(args: argparse.Namespace, state_dir: Path) -> int:
    url, key = base_url(args), api_key(args, state_dir)  # a missing key is said before a long scan
    local = None
    if args.action == "sync":
        root = Path(args.dir).expanduser()
        if not root.is_dir():
            raise SettingsError(f"{args.dir} is not a directory")
        local = scan(root, args.exclude)
    with ProjectClient(url, key) as client:
        try:
            return _act(args, client, local)
        except SolveRejected as exc:
            resume = " (what was sent is kept: the same sync again sends only the rest)" if local is not None else ""
            print(f"atlas: error: {exc}{resume}", file=sys.stderr)
            return 3


def _act(args: argparse.Namespace, client: ProjectClient, local: LocalTree | None) -> int:
    if args.action == "create":
        print(client.call("POST", "/v1/projects", {"name": args.name})["id"])
    elif args.action == "list":
        projects = client.call("GET", "/v1/projects")["data"]
        if args.json or projects:
            print(json.dumps(projects, indent=2) if args.json else "\n".join(describe(p) for p in projects))
    elif args.action == "show":
        project = client.call("GET", f"/v1/projects/{args.id}")
        print(json.dumps(project, indent=2) if args.json else describe(project))
    elif args.action == "delete":
        client.call("DELETE", f"/v1/projects/{args.id}")
        _say(f"deleted {args.id}")
    elif args.action == "search":
        body = {"query": args.query, "k": args.k, "mode": args.mode}
        answer = client.call("POST", f"/v1/projects/{args.id}/search", body)
        if args.json:
            print(json.dumps(answer, indent=2))
            return 0
        for hit in answer.get("results", []):
            print(f"{hit['path']}:{hit['start_line']}-{hit['end_line']}  {hit.get('qualname') or hit.get('name')}  "
                  f"{float(hit.get('score', 0)):.3f}")
        note = f": {answer['note']}" if answer.get("note") else ""
        _say(f"{len(answer.get('results', []))} results ({answer.get('mode')}){note}")
    else:
        assert local is not None
        project_id = args.project
        if project_id is None:
            name = args.name or local.root.resolve().name
            project_id, created = find_or_create(client, name)
            if created:
                _say(f"created project {project_id} ('{name}')")
        summary = sync(client, project_id, local)
        for path, reason in summary.skipped[:None if args.verbose else 20]:
            _say(f"skipped {path}: {reason}")
        if len(summary.skipped) > 20 and not args.verbose:
            _say(f"... and {len(summary.skipped) - 20} more skipped (--verbose lists them all)")
        print(f"{project_id}: {summary.line()}")
    return 0


def add_parser(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    project: argparse.ArgumentParser = sub.add_parser(
        "project", parents=[common], help="sync a source tree to a project and search its code",
        description="Projects (/v1/projects): your source files, outlined and indexed by PageIndex, so that "
        "solves and searches can retrieve code from them. Exit status: 0 done, 2 usage error, 3 platform "
        "unreachable or error.")
    shared = client_arguments(argparse.ArgumentParser(add_help=False))
    actions = project.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", parents=[shared], help="create an empty project (prints its id)")
    create.add_argument("name", help="the project's name")
    listing = actions.add_parser("list", parents=[shared], help="your projects")
    listing.add_argument("--json", action="store_true", help="print them as JSON")
    show = actions.add_parser("show", parents=[shared], help="a project's files, languages and index")
    show.add_argument("id", help="the project id (p_...)")
    show.add_argument("--json", action="store_true", help="print it as JSON")
    delete = actions.add_parser("delete", parents=[shared], help="delete a project and its files")
    delete.add_argument("id", help="the project id (p_...)")
    syncing = actions.add_parser(
        "sync", parents=[shared], help="upload what changed in a directory, delete what is gone",
        description="Make a project hold exactly the files of DIR: only files whose sha256 differs are uploaded. "
        "Symbolic links are skipped (never followed), VCS folders are not walked, and files the platform would "
        "refuse (binary, over 1 MiB, vendored or generated) are skipped with the reason. .gitignore is not read: "
        "use --exclude.")
    syncing.add_argument("dir", help="the directory to sync")
    which = syncing.add_mutually_exclusive_group()
    which.add_argument("--project", metavar="ID", help="the project to sync into")
    which.add_argument("--name", help="sync into your project of this name, created if there is none (default: "
                       "the directory's name)")
    syncing.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                         help="leave out paths (relative to DIR) or names matching GLOB; repeatable")
    syncing.add_argument("-v", "--verbose", action="store_true", help="list every skipped file")
    search = actions.add_parser("search", parents=[shared], help="search a project's code (path:lines name score)")
    search.add_argument("id", help="the project id (p_...)")
    search.add_argument("query", help="what to look for, in words or code")
    search.add_argument("--mode", choices=SEARCH_MODES, default="auto", help="retrieval method (default auto)")
    search.add_argument("-k", type=_count(1), default=10, help="results to return (default 10)")
    search.add_argument("--json", action="store_true", help="print the whole answer as JSON")
    return project
