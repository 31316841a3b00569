"""One record per solve on a Redis stream (for the dashboard and, later, learning) and Prometheus metrics."""

from __future__ import annotations

import hashlib
import json
import logging
import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from redis.asyncio import Redis
from redis.exceptions import RedisError

from atlas_rag.schemas import SolveResult

log = logging.getLogger("atlas.rag.telemetry")
SOLVES_STREAM = "atlas:solves"
SOLVES_MAXLEN = 100_000


class Telemetry:
    def __init__(self, redis: Redis, registry: CollectorRegistry) -> None:
        self._redis = redis
        self.solves = Counter("atlas_solves_total", "Verified solves by outcome", ["status", "stopped"],
                              registry=registry)
        self.candidates = Counter("atlas_solve_candidates_total", "Candidates generated", ["origin"],
                                  registry=registry)
        self.tokens = Counter("atlas_solve_tokens_total", "Tokens spent by solves", ["kind"], registry=registry)
        self.seconds = Histogram("atlas_solve_seconds", "Solve wall time by part", ["part"], registry=registry,
                                 buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600))

    async def record(self, result: SolveResult, problem: str, user_id: str | None) -> None:
        """Never fails the solve: a Redis outage loses the record (logged), not the answer."""
        self.solves.labels(result.status, result.stopped).inc()
        for c in result.candidates:
            self.candidates.labels(c.origin).inc()
        self.tokens.labels("prompt").inc(result.tokens.prompt)
        self.tokens.labels("completion").inc(result.tokens.completion)
        for part in ("total_s", "llm_s", "sandbox_s", "overhead_s"):
            self.seconds.labels(part.removesuffix("_s")).observe(getattr(result.timings, part))
        entry = {
            "ts": f"{time.time():.3f}", "id": result.id, "user_id": user_id or "",
            "problem_hash": hashlib.sha256(problem.encode()).hexdigest()[:16], "language": result.language,
            "k": str(sum(1 for c in result.candidates if c.origin == "sample")),
            "candidates": str(len(result.candidates)),
            "verdicts": json.dumps([c.verdict for c in result.candidates]),
            "winner": "" if result.winner is None else str(result.winner), "status": result.status,
            "verified": "1" if result.verified else "0", "stopped": result.stopped,
            "repair_rounds": str(result.repair_rounds), "self_tests": str(result.tests.self_written),
            "prompt_tokens": str(result.tokens.prompt), "completion_tokens": str(result.tokens.completion),
            "llm_s": str(result.timings.llm_s), "sandbox_s": str(result.timings.sandbox_s),
            "total_s": str(result.timings.total_s),
        }
        try:
            await self._redis.xadd(SOLVES_STREAM, entry, maxlen=SOLVES_MAXLEN, approximate=True)  # type: ignore[arg-type]
        except RedisError as exc:
            log.warning("could not record the solve: %s", exc)
