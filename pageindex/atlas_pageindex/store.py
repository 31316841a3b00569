"""Projects in Redis: who owns each, its files by path with their content hashes, their sources and outlines, and
the embeddings and summaries built from them. Every replica of rag-api reads the same projects.

Keys (``{p}`` a project id, ``p_`` + 24 hex characters the server chose: no id a client sends is ever a file
path, and a path is only ever a hash field):

- ``atlas:proj:{p}``: hash: owner, name, created, version, files, bytes, lines, ``lang:<language>`` counts;
- ``atlas:proj:user:{user}``: set of the user's project ids;
- ``atlas:proj:{p}:files``: hash path -> JSON ``{"sha", "size", "lines", "language"}``;
- ``atlas:proj:{p}:src`` / ``:outline``: hash path -> the file's text / its outline as JSON;
- ``atlas:proj:{p}:emb``: hash embedding key -> float32 vector bytes; ``:sum``: hash summary key -> text;
- ``atlas:proj:bytes``: bytes of source all projects hold (the total bound); ``atlas:proj:pending``: set of
  projects whose embeddings or summaries may be due; ``atlas:proj:{p}:lock``: a write in progress.

A write checks everything first (paths, sizes, the project's and the total bounds), then changes Redis in one
MULTI/EXEC: a refused request writes nothing, and a reader never sees half of one."""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from atlas_pageindex.outline import Node, Outline, language_of, parse
from atlas_pageindex.paths import skip_reason
from atlas_pageindex.settings import PageIndexSettings
from atlas_pageindex.writes import ProjectError as ProjectError  # the store raises it: importable from here
from atlas_pageindex.writes import clean, validate

PREFIX = "atlas:proj:"
TOTAL_KEY = "atlas:proj:bytes"
PENDING_KEY = "atlas:proj:pending"
LOCK_MS = 60_000  # a write holds its project this long at most (a crashed replica's lock expires)
MAX_NAME = 200
Stamp = tuple[int, int]  # (version, embedding stamp): what a process's index is up to date with


def key(pid: str, part: str = "") -> str:
    return f"{PREFIX}{pid}{':' + part if part else ''}"


def user_key(owner: str) -> str:
    return f"{PREFIX}user:{owner}"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class FileMeta:
    sha: str
    size: int
    lines: int
    language: str | None


@dataclass
class Project:
    id: str
    owner: str
    name: str
    created: int
    version: int
    files: int
    bytes: int
    lines: int
    languages: dict[str, int] = field(default_factory=dict)
    embedded: int = 0  # bumped each time the background has stored vectors

    @property
    def stamp(self) -> Stamp:
        return self.version, self.embedded

    def public(self) -> dict[str, Any]:
        """The project as the API shows it (not its owner: the caller is the owner)."""
        return {"id": self.id, "object": "project", "name": self.name, "created": self.created,
                "version": self.version, "files": self.files, "bytes": self.bytes, "lines": self.lines,
                "languages": self.languages}


@dataclass
class WriteResult:
    written: list[str] = field(default_factory=list)  # changed or new files, re-indexed
    unchanged: int = 0
    deleted: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)


def outline_json(outline: Outline) -> str:
    return json.dumps({"language": outline.language, "lines": outline.lines, "doc": outline.doc,
                       "nodes": [asdict(n) for n in outline.nodes]}, separators=(",", ":"))


def outline_of(text: str) -> Outline:
    data = json.loads(text)
    return Outline(language=data["language"], lines=data["lines"], doc=data["doc"],
                   nodes=[Node(**n) for n in data["nodes"]])


def _text(value: bytes | str) -> str:
    """The services' Redis clients answer bytes (``decode_responses=False``); tests may use either."""
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _texts(raw: dict[Any, Any]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in raw.items()}


def _project(pid: str, raw: dict[str, str]) -> Project:
    return Project(id=pid, owner=raw["owner"], name=raw.get("name", ""), created=int(raw.get("created", 0)),
                   version=int(raw.get("version", 0)), files=int(raw.get("files", 0)), bytes=int(raw.get("bytes", 0)),
                   lines=int(raw.get("lines", 0)), embedded=int(raw.get("embedded", 0)),
                   languages={k[5:]: int(v) for k, v in sorted(raw.items()) if k.startswith("lang:") and int(v) > 0})


class ProjectStore:
    def __init__(self, redis: Redis, settings: PageIndexSettings) -> None:
        self.redis = redis
        self.settings = settings

    # -- projects -------------------------------------------------------------------------------------------

    async def create(self, owner: str, name: object) -> Project:
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME or any(
                ord(c) < 32 for c in name):
            raise ProjectError(400, f"'name' must be 1 to {MAX_NAME} printable characters", "name")
        if await self.redis.scard(user_key(owner)) >= self.settings.project_max_per_user:
            raise ProjectError(409, f"you own {self.settings.project_max_per_user} projects, the most allowed "
                               "(ATLAS_PROJECT_MAX_PER_USER); delete one first")
        pid = "p_" + secrets.token_hex(12)
        now = int(time.time())
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key(pid), mapping={"owner": owner, "name": name.strip(), "created": now, "version": 0,
                                         "files": 0, "bytes": 0, "lines": 0})
            pipe.sadd(user_key(owner), pid)
            await pipe.execute()
        return Project(pid, owner, name.strip(), now, 0, 0, 0, 0)

    async def owned(self, owner: str) -> list[Project]:
        pids = sorted(_text(p) for p in await self.redis.smembers(user_key(owner)))
        if not pids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for pid in pids:
                pipe.hgetall(key(pid))
            rows = await pipe.execute()
        found = [_project(pid, raw) for pid, raw in zip(pids, map(_texts, rows), strict=True)
                 if raw.get("owner") == owner]
        return sorted(found, key=lambda p: (p.created, p.id))

    async def get(self, owner: str, pid: str) -> Project:
        """The project, if ``owner`` owns it; otherwise 404, the same answer as for an id that does not exist
        (another user's project must not be discoverable)."""
        raw = _texts(await self.redis.hgetall(key(pid))) if _well_formed(pid) else {}
        if not raw or raw.get("owner") != owner:
            raise ProjectError(404, f"no project '{pid[:40]}' among yours; GET /v1/projects lists them", "project_id")
        return _project(pid, raw)

    async def stamp(self, pid: str) -> Stamp | None:
        """The project's version (moved by each write that changes a file) and embedding stamp (moved each time
        the background has stored vectors); None when it does not exist."""
        version, embedded = await self.redis.hmget(key(pid), ["version", "embedded"])
        return None if version is None else (int(version), int(embedded or 0))

    async def delete(self, owner: str, pid: str) -> None:
        await self.get(owner, pid)
        async with self.redis.pipeline(transaction=True) as pipe:
            for _ in range(10):  # a write that lands between reading the bytes and deleting: read them again
                await pipe.watch(key(pid))
                size = int(await pipe.hget(key(pid), "bytes") or 0)
                pipe.multi()  # type: ignore[no-untyped-call]
                pipe.unlink(*(key(pid, part) for part in ("", "files", "src", "outline", "emb", "sum", "lock")))
                pipe.srem(user_key(owner), pid)
                pipe.srem(PENDING_KEY, pid)
                pipe.decrby(TOTAL_KEY, size)
                try:
                    await pipe.execute()
                    return
                except WatchError:
                    continue
        raise ProjectError(409, "the project kept changing while it was being deleted; retry")

    # -- files ----------------------------------------------------------------------------------------------

    async def metas(self, pid: str) -> dict[str, FileMeta]:
        raw = _texts(await self.redis.hgetall(key(pid, "files")))
        return {path: FileMeta(**json.loads(v)) for path, v in raw.items()}

    async def diff(self, owner: str, pid: str, manifest: object) -> dict[str, Any]:
        """What a sync must send: the paths whose hash differs or that are new (``upload``), and the paths the
        project holds that the manifest lacks (``delete``)."""
        await self.get(owner, pid)
        if not isinstance(manifest, dict):
            raise ProjectError(400, "'files' must be an object of path -> sha256 (hex)", "files")
        if len(manifest) > self.settings.project_max_files:
            raise ProjectError(413, f"{len(manifest)} files: a project holds at most "
                               f"{self.settings.project_max_files} (ATLAS_PROJECT_MAX_FILES)", "files")
        wanted: dict[str, str] = {}
        for raw_path, digest in manifest.items():
            path = clean(raw_path, f"files.{str(raw_path)[:80]}")
            if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ProjectError(400, f"'files.{path}' must be the file's sha256 as 64 lowercase hex digits",
                                   f"files.{path}")
            wanted[path] = digest
        held = await self.metas(pid)
        upload = sorted(p for p, d in wanted.items() if p not in held or held[p].sha != d)
        return {"upload": upload, "delete": sorted(p for p in held if p not in wanted),
                "unchanged": len(wanted) - len(upload)}

    async def write(self, owner: str, pid: str, files: object, delete: object) -> WriteResult:
        """Writes ``files`` ([{path, content}]) and deletes ``delete`` ([path]) in one transaction, after every
        check has passed. A file whose content hash is unchanged is not re-parsed or re-written."""
        await self.get(owner, pid)
        incoming, removals = validate(files, delete, self.settings)
        lock = key(pid, "lock")
        if not await self.redis.set(lock, "1", nx=True, px=LOCK_MS):
            raise ProjectError(409, "another sync of this project is in progress; retry when it finishes")
        try:
            return await self._write(pid, incoming, removals)
        finally:
            await self.redis.delete(lock)

    async def _write(self, pid: str, incoming: dict[str, str], removals: list[str]) -> WriteResult:
        s = self.settings
        result = WriteResult()
        paths = list(incoming) + removals
        held_raw = await self.redis.hmget(key(pid, "files"), paths) if paths else []
        held = {p: FileMeta(**json.loads(v)) for p, v in zip(paths, held_raw, strict=True) if v is not None}
        changed: dict[str, tuple[str, FileMeta]] = {}
        for path, content in incoming.items():
            if (reason := skip_reason(path, content.encode("utf-8"))) is not None:
                result.skipped.append({"path": path, "reason": reason})
                continue
            digest = sha256(content)
            if path in held and held[path].sha == digest:
                result.unchanged += 1
                continue
            changed[path] = (content, FileMeta(digest, len(content.encode("utf-8")), _lines(content),
                                               language_of(path)))
        gone = [p for p in removals if p in held]
        if not changed and not gone:
            return result
        raw = await self.redis.hmget(key(pid), ["files", "bytes"])
        files_now, bytes_now = (int(v or 0) for v in raw)
        d_files = sum(1 for p in changed if p not in held) - len(gone)
        d_bytes = (sum(m.size for _, m in changed.values()) - sum(held[p].size for p in changed if p in held)
                   - sum(held[p].size for p in gone))
        if files_now + d_files > s.project_max_files:
            raise ProjectError(413, f"the project would hold {files_now + d_files} files; at most "
                               f"{s.project_max_files} (ATLAS_PROJECT_MAX_FILES)", "files")
        if bytes_now + d_bytes > s.project_max_bytes:
            raise ProjectError(413, f"the project would hold {bytes_now + d_bytes} bytes; at most "
                               f"{s.project_max_bytes} (ATLAS_PROJECT_MAX_BYTES)", "files")
        if d_bytes > 0 and int(await self.redis.get(TOTAL_KEY) or 0) + d_bytes > s.project_max_total_bytes:
            raise ProjectError(507, "the platform's project storage is full (ATLAS_PROJECT_MAX_TOTAL_BYTES); "
                               "delete a project or ask the operator to raise it")
        # Parsing is CPU work: off the event loop, so other requests go on while a large sync is read.
        outlines = await asyncio.to_thread(lambda: {p: outline_json(parse(p, c)) for p, (c, _) in changed.items()})
        async with self.redis.pipeline(transaction=True) as pipe:
            await pipe.watch(key(pid))  # a delete from here on aborts the transaction
            if not await pipe.hexists(key(pid), "owner"):
                raise ProjectError(404, "the project was deleted during this sync", "project_id")
            pipe.multi()  # type: ignore[no-untyped-call]
            if changed:
                metas: dict[Any, Any] = {p: json.dumps(asdict(m)) for p, (_, m) in changed.items()}
                texts: dict[Any, Any] = {p: c for p, (c, _) in changed.items()}
                pipe.hset(key(pid, "files"), mapping=metas)
                pipe.hset(key(pid, "src"), mapping=texts)
                pipe.hset(key(pid, "outline"), mapping=dict[Any, Any](outlines))
            if gone:
                for part in ("files", "src", "outline"):
                    pipe.hdel(key(pid, part), *gone)
            pipe.hincrby(key(pid), "files", d_files)
            pipe.hincrby(key(pid), "bytes", d_bytes)
            pipe.hincrby(key(pid), "lines", sum(m.lines for _, m in changed.values())
                         - sum(held[p].lines for p in [*changed, *gone] if p in held))
            for lang, delta in _language_deltas(changed, held, gone).items():
                pipe.hincrby(key(pid), f"lang:{lang}", delta)
            pipe.hincrby(key(pid), "version", 1)
            pipe.incrby(TOTAL_KEY, d_bytes)
            pipe.sadd(PENDING_KEY, pid)
            try:
                await pipe.execute()
            except WatchError:
                raise ProjectError(404, "the project was deleted during this sync", "project_id") from None
        result.written = sorted(changed)
        result.deleted = len(gone)
        return result

    async def sources(self, pid: str, paths: list[str]) -> dict[str, str]:
        if not paths:
            return {}
        values = await self.redis.hmget(key(pid, "src"), paths)
        return {p: _text(v) for p, v in zip(paths, values, strict=True) if v is not None}

    async def outlines(self, pid: str, paths: list[str]) -> dict[str, Outline]:
        if not paths:
            return {}
        values = await self.redis.hmget(key(pid, "outline"), paths)
        return {p: outline_of(_text(v)) for p, v in zip(paths, values, strict=True) if v is not None}

    # -- what the background builds -------------------------------------------------------------------------

    async def vectors(self, pid: str, keys: list[str]) -> dict[str, np.ndarray]:
        if not keys:
            return {}
        values = await self.redis.hmget(key(pid, "emb"), keys)
        return {k: np.frombuffer(v if isinstance(v, bytes) else v.encode("latin-1"), dtype=np.float32)
                for k, v in zip(keys, values, strict=True) if v is not None}

    async def put_vectors(self, pid: str, vectors: dict[str, np.ndarray]) -> None:
        packed: dict[Any, Any] = {k: v.astype(np.float32).tobytes() for k, v in vectors.items()}
        if packed:
            await self._while_alive(pid, lambda pipe: pipe.hset(key(pid, "emb"), mapping=packed))

    async def prune(self, pid: str, part: str, keep: set[str]) -> int:
        """Drops the embeddings or summaries (``part``) of code that is gone, so they stay bounded by the code."""
        stale = [k for k in (_text(x) for x in await self.redis.hkeys(key(pid, part))) if k not in keep]
        if stale:
            await self.redis.hdel(key(pid, part), *stale)
        return len(stale)

    async def summaries(self, pid: str, keys: list[str]) -> dict[str, str]:
        if not keys:
            return {}
        values = await self.redis.hmget(key(pid, "sum"), keys)
        return {k: _text(v) for k, v in zip(keys, values, strict=True) if v is not None}

    async def put_summary(self, pid: str, summary_key: str, text: str) -> None:
        await self._while_alive(pid, lambda pipe: pipe.hset(key(pid, "sum"), summary_key, text[:500]))

    async def mark_embedded(self, pid: str) -> None:
        """New vectors are stored: every replica's index reads them at its next query."""
        await self._while_alive(pid, lambda pipe: pipe.hincrby(key(pid), "embedded", 1))

    async def _while_alive(self, pid: str, write: Callable[[Pipeline], object]) -> None:
        """The background's ``write``, in one transaction, only while the project exists: a write it finishes
        after a delete must not bring the project's keys back. A project that changed meanwhile (a sync, the
        delete) drops the write; the sync marked it pending, so its background runs again."""
        async with self.redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(key(pid))
                if not await pipe.exists(key(pid)):
                    return
                pipe.multi()  # type: ignore[no-untyped-call]
                write(pipe)
                await pipe.execute()
            except WatchError:
                return

    async def pending(self) -> str | None:
        """A project whose background work may be due (taken off the set; a write puts it back)."""
        value = await self.redis.spop(PENDING_KEY)
        return _text(value) if isinstance(value, (bytes, str)) else None

    async def mark_pending(self, pid: str) -> None:
        await self.redis.sadd(PENDING_KEY, pid)


def _well_formed(pid: str) -> bool:
    return len(pid) == 26 and pid.startswith("p_") and all(c in "0123456789abcdef" for c in pid[2:])


def _lines(text: str) -> int:
    return text.count("\n") + (0 if text.endswith("\n") or not text else 1)


def _language_deltas(changed: dict[str, tuple[str, FileMeta]], held: dict[str, FileMeta], gone: list[str]
                     ) -> dict[str, int]:
    deltas: dict[str, int] = {}
    for path, (_, meta) in changed.items():
        if meta.language:
            deltas[meta.language] = deltas.get(meta.language, 0) + 1
        if path in held and held[path].language:
            deltas[held[path].language or ""] = deltas.get(held[path].language or "", 0) - 1
    for path in gone:
        if held[path].language:
            deltas[held[path].language or ""] = deltas.get(held[path].language or "", 0) - 1
    return {k: v for k, v in deltas.items() if v}
