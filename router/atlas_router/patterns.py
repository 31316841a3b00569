"""The pattern cache: each user's verified solutions, retrieved by the similarity of the problems.

A pattern is written only from a solve that passed its public tests, and belongs to its owner: lookups see the
owner's patterns and those an admin marked shared (``atlas router share``), never another user's. A pattern keeps
the problem's embedding, its text (cut), a short description of the approach and the program.

Scores follow PLATFORM.md §5, computed at query time with an injectable clock:
``similarity x 0.5^(days since last access / half-life) x max(1, ln(1 + accesses))``, half-lives by kind (api 7
days, fix 14, architecture 30, idiom 90). New patterns enter the short-term tier (at most ``short_max`` a user,
lowest score evicted); one with >= 3 accesses, >= 60 % success and >= 3 days of age is promoted to the long-term
tier (at most ``long_max``; pruned below 0.01 without the similarity).

Redis, per user (every key expires ``days`` after the user's last write or use):
``atlas:pat:{user}:vec`` (hash id -> float16 embedding: one read scores them all), ``atlas:pat:{user}:p:{id}``
(hash: the pattern and its counters, HINCRBY so concurrent uses add up); ``atlas:pat:users`` (zset user -> last
activity, capped at ``users``), ``atlas:pat:shared`` (hash "user/id" -> embedding, admin-marked)."""

from __future__ import annotations

import ast
import hashlib
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from redis.asyncio import Redis

Kind = Literal["api", "fix", "architecture", "idiom"]
HALF_LIFE_DAYS: dict[str, float] = {"api": 7.0, "fix": 14.0, "architecture": 30.0, "idiom": 90.0}
PROMOTE_ACCESSES, PROMOTE_SUCCESS, PROMOTE_DAYS = 3, 0.6, 3.0
PRUNE_BELOW = 0.01
MAX_PROBLEM_CHARS = 1500
MAX_CODE_CHARS = 16_000
MAX_DESCRIPTION_CHARS = 400
MAX_SHARED = 1000
SCAN_TOP = 8  # patterns read in full per lookup (the most similar)
DAY = 86400.0
LIGHT = ("kind", "tier", "language", "created", "last", "accesses", "uses", "successes")
USER_SAFE = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")


@dataclass(frozen=True)
class Pattern:
    id: str
    owner: str
    kind: Kind
    tier: str
    language: str
    problem: str
    description: str
    code: str
    created: float
    last: float
    accesses: int
    uses: int
    successes: int
    shared: bool = False

    @property
    def key(self) -> str:
        return pattern_key(self.owner, self.id)

    def decay(self, now: float) -> float:
        """The score without the similarity: recency by the kind's half-life, times how often it was used."""
        days = max(0.0, now - self.last) / DAY
        return float(0.5 ** (days / HALF_LIFE_DAYS[self.kind])) * max(1.0, math.log(1 + self.accesses))

    def promotable(self, now: float) -> bool:
        return (self.tier == "short" and self.accesses >= PROMOTE_ACCESSES and self.uses > 0
                and self.successes / self.uses >= PROMOTE_SUCCESS and now - self.created >= PROMOTE_DAYS * DAY)


@dataclass(frozen=True)
class Match:
    pattern: Pattern
    similarity: float
    score: float

    def brief(self) -> dict[str, Any]:
        p = self.pattern
        return {"id": p.id, "similarity": round(self.similarity, 4), "score": round(self.score, 4), "kind": p.kind,
                "tier": p.tier, "shared": p.shared}


def user_part(user: str) -> str:
    """A user id as a key part: as it is when plain, else its hash (no id can reach into another's keys)."""
    return user if USER_SAFE.match(user) else "h" + hashlib.sha256(user.encode()).hexdigest()[:32]


def pattern_key(owner: str, pid: str) -> str:
    """A pattern's hash; ``owner`` is already a key part (``user_part``)."""
    return f"atlas:pat:{owner}:p:{pid}"


def pattern_id(language: str, problem: str) -> str:
    """One pattern per problem per user: solving it again updates the pattern rather than adding one."""
    return hashlib.sha256(f"{language}\0{' '.join(problem.split())}".encode()).hexdigest()[:16]


def kind_of(origin: str, plan: bool, code: str, language: str) -> Kind:
    """A repair is a fix; a plan-first program an architectural approach; a program that imports something an
    API use; the rest an idiom."""
    if origin == "repair":
        return "fix"
    if plan:
        return "architecture"
    if language == "python":
        try:
            tree = ast.parse(code)
        except (SyntaxError, ValueError):
            return "idiom"
        return "api" if any(isinstance(n, ast.Import | ast.ImportFrom) for n in ast.walk(tree)) else "idiom"
    return "api" if re.search(r"^\s*(#include|import |use |require\()", code, re.MULTILINE) else "idiom"


def describe(problem: str, plan: str | None) -> str:
    """A short description of the approach: its plan when it was written from one, else the problem's gist."""
    if plan:
        return plan[:MAX_DESCRIPTION_CHARS]
    text = " ".join(problem.split())
    first = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
    return first[:MAX_DESCRIPTION_CHARS]


def _vector(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float16).astype(np.float32)


def _blob(vector: np.ndarray) -> bytes:
    v = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(v))
    return (v / norm if norm > 0 else v).astype(np.float16).tobytes()


def _text(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")


def _pattern(pid: str, owner: str, row: dict[Any, Any], shared: bool = False) -> Pattern | None:
    f = {_text(k): _text(v) for k, v in row.items() if v is not None}
    if not f.get("code"):
        return None
    try:
        return Pattern(id=pid, owner=owner, kind=f.get("kind", "idiom") if f.get("kind") in HALF_LIFE_DAYS
                       else "idiom",  # type: ignore[arg-type]
                       tier=f.get("tier", "short"), language=f.get("language", "python"), problem=f.get("problem", ""),
                       description=f.get("description", ""), code=f["code"], created=float(f.get("created", 0)),
                       last=float(f.get("last", 0)), accesses=int(f.get("accesses", 0)), uses=int(f.get("uses", 0)),
                       successes=int(f.get("successes", 0)), shared=shared)
    except ValueError:
        return None


class PatternCache:
    def __init__(self, redis: Redis, *, short_max: int = 100, long_max: int = 1000, users: int = 1000,
                 days: float = 180.0, clock: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self.short_max = short_max
        self.long_max = long_max
        self.users = users
        self.ttl = max(1, int(days * DAY))
        self.clock = clock

    @staticmethod
    def _vec(user: str) -> str:
        return f"atlas:pat:{user_part(user)}:vec"

    @staticmethod
    def _key(user: str, pid: str) -> str:
        return pattern_key(user_part(user), pid)

    async def lookup(self, user: str, vector: np.ndarray, language: str, limit: int) -> list[Match]:
        """The user's (and shared) patterns of this language most similar to the problem, best score first."""
        query = np.frombuffer(_blob(vector), dtype=np.float16).astype(np.float32)
        own: dict[bytes, bytes] = await self.redis.hgetall(self._vec(user))  # type: ignore[assignment]
        shared: dict[bytes, bytes] = await self.redis.hgetall("atlas:pat:shared")  # type: ignore[assignment]
        me = user_part(user)
        rows: list[tuple[str, str, bytes, bool]] = [(me, _text(k), v, False) for k, v in own.items()]
        for k, v in shared.items():
            owner, _, pid = _text(k).partition("/")
            if owner != me:
                rows.append((owner, pid, v, True))
        if not rows:
            return []
        usable = [r for r in rows if len(r[2]) == query.size * 2]  # another embedding model's vectors do not compare
        if not usable:
            return []
        sims = np.stack([_vector(r[2]) for r in usable]) @ query
        order = np.argsort(-sims)[:SCAN_TOP]
        async with self.redis.pipeline(transaction=False) as pipe:
            for i in order:
                owner, pid, _, _ = usable[i]
                pipe.hgetall(pattern_key(owner, pid))
            found = await pipe.execute()
        now = self.clock()
        matches = []
        for i, row in zip(order, found, strict=True):
            owner, pid, _, is_shared = usable[i]
            p = _pattern(pid, owner, row, is_shared)
            if p is None or p.language != language:
                continue
            sim = max(0.0, float(sims[i]))
            matches.append(Match(p, sim, sim * p.decay(now)))
        matches.sort(key=lambda m: -m.score)
        return matches[:limit]

    async def write(self, user: str, vector: np.ndarray, *, language: str, problem: str, code: str,
                    description: str, kind: Kind) -> str | None:
        """Keep a verified solution (the caller verified it); solving the same problem again refreshes it. None:
        too large to keep."""
        if len(code) > MAX_CODE_CHARS:
            return None
        pid, now = pattern_id(language, problem), self.clock()
        key = self._key(user, pid)
        if await self.redis.exists(key):
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, "last", now)
                pipe.expire(key, self.ttl)
                await pipe.execute()
        else:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping={"kind": kind, "tier": "short", "language": language,
                                        "problem": problem[:MAX_PROBLEM_CHARS],
                                        "description": description[:MAX_DESCRIPTION_CHARS], "code": code,
                                        "created": now, "last": now, "accesses": 0, "uses": 0, "successes": 0})
                pipe.expire(key, self.ttl)
                pipe.hset(self._vec(user), pid, _blob(vector))
                pipe.expire(self._vec(user), self.ttl)
                await pipe.execute()
        await self._active(user, now)
        await self._bound(user)
        return pid

    async def touch(self, user: str, matches: list[Match], success: bool | None) -> None:
        """The patterns a solve used: one more access each and, when the solve had a verified outcome
        (``success`` not None), one more use and maybe a success. Promotion follows."""
        now = self.clock()
        for m in matches:
            key = m.pattern.key
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hincrby(key, "accesses", 1)
                if success is not None:
                    pipe.hincrby(key, "uses", 1)
                    pipe.hincrby(key, "successes", int(success))
                pipe.hset(key, "last", now)
                pipe.expire(key, self.ttl)  # a pattern in use lives on, as its user's other keys do
                pipe.hgetall(key)
                out = await pipe.execute()
            p = _pattern(m.pattern.id, m.pattern.owner, out[-1], m.pattern.shared)
            if p is None:  # gone meanwhile (forgotten, evicted): the increments made a stub; remove it
                await self.redis.delete(key)
            elif p.promotable(now):
                await self.redis.hset(key, "tier", "long")
        await self._active(user, now)

    async def patterns(self, user: str) -> list[Pattern]:
        ids = [_text(k) for k in await self.redis.hkeys(self._vec(user))]
        async with self.redis.pipeline(transaction=False) as pipe:
            for pid in ids:
                pipe.hgetall(self._key(user, pid))
            rows = await pipe.execute()
        shared = {_text(k) for k in await self.redis.hkeys("atlas:pat:shared")}
        found = [_pattern(pid, user_part(user), row, f"{user_part(user)}/{pid}" in shared)
                 for pid, row in zip(ids, rows, strict=True)]
        return [p for p in found if p is not None]

    async def _bound(self, user: str) -> None:
        """Each tier within its cap (lowest score out), the long tier above the prune floor, vectors of
        expired patterns dropped."""
        now = self.clock()
        ids = [_text(k) for k in await self.redis.hkeys(self._vec(user))]
        async with self.redis.pipeline(transaction=False) as pipe:
            for pid in ids:  # the counters only: a bound never reads the programs
                pipe.hmget(self._key(user, pid), *LIGHT)
            rows = await pipe.execute()
        mine = {}
        for pid, row in zip(ids, rows, strict=True):
            p = _pattern(pid, user_part(user), {**dict(zip(LIGHT, row, strict=True)), "code": "-"}) \
                if row[0] is not None else None
            if p is not None:
                mine[pid] = p
        drop = [pid for pid in ids if pid not in mine]
        for tier, cap in (("short", self.short_max), ("long", self.long_max)):
            ranked = sorted((p for p in mine.values() if p.tier == tier), key=lambda p: -p.decay(now))
            drop += [p.id for p in ranked[cap:]]
            if tier == "long":
                drop += [p.id for p in ranked[:cap] if p.decay(now) < PRUNE_BELOW]
        if drop:
            await self.delete(user, drop)

    async def delete(self, user: str, ids: list[str]) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self._vec(user), *ids)
            pipe.hdel("atlas:pat:shared", *(f"{user_part(user)}/{pid}" for pid in ids))
            pipe.delete(*(self._key(user, pid) for pid in ids))
            await pipe.execute()

    async def forget(self, user: str) -> int:
        """Every pattern of ``user``; how many there were."""
        ids = [_text(k) for k in await self.redis.hkeys(self._vec(user))]
        if ids:
            await self.delete(user, ids)
        await self.redis.delete(self._vec(user))
        await self.redis.zrem("atlas:pat:users", user_part(user))
        return len(ids)

    async def share(self, user: str, pid: str, on: bool = True) -> bool:
        """An admin's choice: ``user``'s pattern ``pid`` is offered to every user (False: no such pattern)."""
        vector = await self.redis.hget(self._vec(user), pid)
        if vector is None:
            return False
        if on:
            if await self.redis.hlen("atlas:pat:shared") >= MAX_SHARED:
                raise ValueError(f"{MAX_SHARED} patterns are shared already: unshare one first")
            await self.redis.hset("atlas:pat:shared", f"{user_part(user)}/{pid}", vector)
        else:
            await self.redis.hdel("atlas:pat:shared", f"{user_part(user)}/{pid}")
        return True

    async def _active(self, user: str, now: float) -> None:
        """The user's keys live ``days`` past their last activity; beyond ``users`` users, the least recently
        active one's patterns are deleted."""
        await self.redis.zadd("atlas:pat:users", {user_part(user): now})
        await self.redis.expire(self._vec(user), self.ttl)
        over = int(await self.redis.zcard("atlas:pat:users")) - self.users
        if over > 0:
            oldest: list[bytes] = await self.redis.zrange("atlas:pat:users", 0, over - 1)  # type: ignore[assignment]
            for old in oldest:
                await self.forget(_text(old))
