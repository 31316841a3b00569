"""Runs solves for the routes: admission (a bounded number at once, counted across every rag-api replica), the
solve itself, and one telemetry record per finished solve."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from atlas_core.lua import source
from atlas_engine import Engine, Solve, SolveRequest, SolveResult, Telemetry, Workspace
from atlas_lens import FeedbackRecorder

log = logging.getLogger("atlas.rag")
SLOT_GRACE_S = 30.0  # past a solve's deadline, its admission slot is free whatever happened to its task
SLOTS_KEY = "atlas:rag:slots"  # a sorted set: member a solve id, score when its slot expires (Redis's clock, ms)
ADMIT = source("rag_admission")  # atlas_core/lua/rag_admission.lua says its KEYS, ARGV and answer
Emit = Callable[[dict[str, Any]], Awaitable[None]]


class SolverBusy(Exception):
    """As many solves as ATLAS_RAG_MAX_CONCURRENT allows are running already (on all replicas together)."""


class Admission:
    """The admission slots, in Redis so that every replica takes from the same ``limit``: it protects the model
    servers behind them all, so it is the cluster's total, not each replica's (an autoscaler adding replicas
    must not add load).

    A slot is taken and the expired ones dropped in one script (atomic: two replicas cannot both take the last
    slot), with its expiry set by Redis's clock, so a replica that dies holding slots frees them at their expiry.
    Every call raises redis errors; the caller decides what they mean (503 on admission).

        admission = Admission(redis, limit=8)
        if await admission.take(solve_id, hold_s=330.0):
            try: ...
            finally: await admission.give(solve_id)
    """

    def __init__(self, redis: Redis, limit: int, registry: CollectorRegistry | None = None) -> None:
        self.limit = limit
        self._redis = redis
        self.results = Counter("atlas_rag_admissions_total", "Solves asking rag-api for a slot, by result: admitted, "
                               "busy (every slot of every replica held: 503) or unavailable (Redis could not say: "
                               "503)", ["result"], registry=registry)
        # redis-py's script helper sends EVALSHA and, when Redis lost the script (a restart: NOSCRIPT), loads it
        # again and retries.
        self._admit = redis.register_script(ADMIT)

    async def take(self, solve_id: str, hold_s: float) -> bool:
        """A slot for ``solve_id``, held ``hold_s`` at most; False when all ``limit`` are held."""
        try:
            taken, _ = await self._admit(keys=[SLOTS_KEY], args=[solve_id, self.limit, max(1, int(hold_s * 1000))])
        except RedisError:
            self.results.labels("unavailable").inc()
            raise
        self.results.labels("admitted" if taken else "busy").inc()
        return bool(taken)

    async def give(self, solve_id: str) -> None:
        await self._redis.zrem(SLOTS_KEY, solve_id)

    async def running(self) -> int:
        """Slots held now by every replica (the expired ones dropped first)."""
        _, held = await self._admit(keys=[SLOTS_KEY], args=["", self.limit, 0])
        return int(held)


class Solver:
    """Admission, the solve (the caller runs it as its own task, cancelled when the client goes), and one
    telemetry record per finished solve."""

    def __init__(self, engine: Engine, telemetry: Telemetry, admission: Admission,
                 feedback: FeedbackRecorder) -> None:
        self.engine = engine
        self.telemetry = telemetry
        self.feedback = feedback
        self.admission = admission

    async def running(self) -> int:
        """Solves running now on all replicas together (a Redis round trip; raises redis errors)."""
        return await self.admission.running()

    async def start(self, request: SolveRequest, token_cap: int | None = None,
                    workspace: Workspace | None = None) -> Solve:
        """Parse and admit a solve before any work: ProblemError for bad input, SolverBusy when every slot is
        held, a redis error when Redis cannot say. The slot is taken here, so a burst of requests cannot all pass
        before any of them runs; ``run`` gives it back. A solve whose task never gets to run (its client left at
        once) holds it until its deadline plus SLOT_GRACE_S at most."""
        solve = self.engine.start(request, workspace)  # first: the slot's expiry is the solve's own deadline
        solve.token_cap = token_cap
        if not await self.admission.take(solve.id, solve.budget.deadline_s + SLOT_GRACE_S):
            raise SolverBusy()
        return solve

    async def run(self, solve: Solve, emit: Emit | None, user_id: str | None) -> SolveResult:
        solve.owner = user_id  # the router's patterns are the user's
        try:
            result = await self.engine.run(solve, emit)
        finally:
            await self._give_back(solve.id)
        await self.telemetry.record(result, solve.problem.text, user_id)
        self.feedback.submit(result, solve.problem.text, user_id)  # in the background, where learning is on
        return result

    async def _give_back(self, solve_id: str) -> None:
        try:
            await self.admission.give(solve_id)
        except RedisError as exc:  # not the client's problem: the answer stands, the slot expires by itself
            log.warning("could not give back solve %s's admission slot (%s); it frees itself at its expiry",
                        solve_id, exc)
