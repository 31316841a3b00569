"""Verified outcomes kept for training, only for the users the operator turned learning on for.

Per solve (``/v1/solve``, a verified chat completion, or a task's attempt) one record: the problem's text and
embedding, and per candidate its code, embedding, what it passed (the public tests: the user's and the
statement's examples, counted together; the self-written checks) and whether it was selected. The record is
written after the answer, never waited for by the request: a process writes at most ``lens_feedback_pending``
at once and drops (and counts) the rest.

Bounds (Redis, ``atlas:lens:*``): a record is at most ``MAX_RECORD_BYTES`` (candidates beyond are left out); a
user keeps their newest ``lens_feedback_per_user`` records for ``lens_feedback_days`` after their last one; at
most ``lens_feedback_users`` users have records (the least recently active one's are deleted first). Records
leave Redis only through ``atlas lens export`` / ``atlas lens train`` on the operator's machine, and only as
weights after that; ``atlas lens forget USER`` deletes a user's."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from atlas_engine import SolveResult
from atlas_lens.features import EmbeddingClient, EmbedUnavailable, code_text, pack, problem_text
from atlas_lens.settings import LensSettings

log = logging.getLogger("atlas.lens.feedback")
LEARN_SET = "atlas:lens:learn"
USERS = "atlas:lens:fb:users"
MAX_RECORD_BYTES = 64 * 1024
Source = Literal["solve", "task"]


def records_key(user: str) -> str:
    return f"atlas:lens:fb:{user}"


class FeedbackRecorder:
    def __init__(self, redis: Redis, embedder: EmbeddingClient, settings: LensSettings,
                 registry: CollectorRegistry) -> None:
        self.redis = redis
        self.embedder = embedder
        self.settings = settings
        self.pending: set[asyncio.Task[None]] = set()
        self.outcomes = Counter("atlas_lens_feedback_total", "Solve records for Lens training: recorded, skipped "
                                "(learning off for the user, or nothing to learn), dropped (too many being "
                                "written) or failed (Redis or embeddings down)", ["result"], registry=registry)
        for result in ("recorded", "skipped", "dropped", "failed"):
            self.outcomes.labels(result)

    def submit(self, result: SolveResult, problem: str, user_id: str | None, source: Source = "solve") -> None:
        """Record in the background; never blocks or fails the caller."""
        if self.settings.lens_learn == "off" or not user_id or not any(c.code for c in result.candidates):
            self.outcomes.labels("skipped").inc()
            return
        if len(self.pending) >= self.settings.lens_feedback_pending:
            self.outcomes.labels("dropped").inc()
            return
        task = asyncio.create_task(self.record(result, problem, user_id, source))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def drain(self) -> None:
        """Wait for the records being written (at shutdown)."""
        if self.pending:
            await asyncio.gather(*self.pending, return_exceptions=True)

    async def learns(self, user_id: str) -> bool:
        if self.settings.lens_learn == "all":
            return True
        return self.settings.lens_learn == "listed" and bool(await self.redis.sismember(LEARN_SET, user_id))

    async def record(self, result: SolveResult, problem: str, user_id: str, source: Source = "solve") -> None:
        try:
            if not await self.learns(user_id):
                self.outcomes.labels("skipped").inc()
                return
            body = await self._build(result, problem, source)
            await self._write(user_id, body)
        except (RedisError, EmbedUnavailable, TimeoutError) as exc:
            self.outcomes.labels("failed").inc()
            log.warning("lens feedback: not recorded (%s)", type(exc).__name__)
            return
        self.outcomes.labels("recorded").inc()

    async def _build(self, result: SolveResult, problem: str, source: Source) -> str:
        features = self.settings.lens_features
        # the selected candidate first, so the record's size bound never leaves it out
        kept = sorted((c for c in result.candidates if c.code and c.duplicate_of is None),
                      key=lambda c: c.index != result.winner)
        async with asyncio.timeout(self.settings.lens_timeout_s * 2):
            vectors = await self.embedder.embed([problem_text(problem)]
                                                + [code_text(features, problem, c.code or "") for c in kept])
        record: dict[str, Any] = {
            "at": time.time(), "source": source, "solve": result.id, "language": result.language,
            "features": {"source": features, "dim": int(vectors.shape[1])}, "problem": problem[:20_000],
            "problem_embedding": pack(vectors[0]), "tests": result.tests.model_dump(), "candidates": []}
        size = len(json.dumps(record))
        for c, v in zip(kept, vectors[1:], strict=True):
            entry = {"index": c.index, "origin": c.origin, "code": c.code, "embedding": pack(v),
                     "verdict": c.verdict, "public_passed": c.public_passed, "public_total": c.public_total,
                     "self_passed": c.self_passed, "agreement": c.self_agreement, "faults": c.faults,
                     "selected": c.index == result.winner}
            cost = len(json.dumps(entry)) + 2
            if size + cost > MAX_RECORD_BYTES:
                break  # the bound on a record: the candidates that fit
            record["candidates"].append(entry)
            size += cost
        return json.dumps(record)

    async def _write(self, user_id: str, body: str) -> None:
        s = self.settings
        now = time.time()
        key = records_key(user_id)
        ttl = int(s.lens_feedback_days * 86400)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lpush(key, body)
            pipe.ltrim(key, 0, s.lens_feedback_per_user - 1)
            pipe.expire(key, ttl)
            pipe.zadd(USERS, {user_id: now})
            # what the user bound needs, read in the same round trip
            pipe.zrangebyscore(USERS, "-inf", now - ttl)
            pipe.zcard(USERS)
            *_, stale, count = await pipe.execute()
        # The user bound: the least recently active users' records go first; so do users idle past retention
        # (their lists expired already; their index entries follow).
        extra = max(0, count - s.lens_feedback_users)
        evicted = _names(stale) + (_names(await self.redis.zrange(USERS, 0, extra - 1)) if extra else [])
        if evicted:
            await self.redis.delete(*(records_key(u) for u in evicted))
            await self.redis.zrem(USERS, *evicted)


def _names(members: list[Any]) -> list[str]:
    return [u.decode() if isinstance(u, bytes) else str(u) for u in members]


async def users(redis: Redis) -> list[str]:
    return _names(await redis.zrange(USERS, 0, -1))


async def records(redis: Redis) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """Every kept record, with its user (for ``atlas lens export`` and the trainer)."""
    for user in await users(redis):
        for raw in await redis.lrange(records_key(user), 0, -1):
            try:
                yield user, json.loads(raw)
            except ValueError:
                continue


async def forget(redis: Redis, user: str) -> int:
    """Delete a user's records and their learning flag; returns the records deleted."""
    count = int(await redis.llen(records_key(user)))
    await redis.delete(records_key(user))
    await redis.zrem(USERS, user)
    await redis.srem(LEARN_SET, user)
    return count


async def set_learning(redis: Redis, user: str, on: bool) -> None:
    if on:
        await redis.sadd(LEARN_SET, user)
    else:
        await redis.srem(LEARN_SET, user)
