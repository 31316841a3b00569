"""One record per solve on a Redis stream (for the dashboard and, later, learning) and Prometheus metrics.

Both rag-api (``/v1/solve`` and verified chat completions: ``source="solve"``) and the task-worker (each attempt
of a task is a solve: ``source="task"``, with the task's id) record through this class, into their own registry
and the same stream."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Histogram
from redis.asyncio import Redis
from redis.exceptions import RedisError

from atlas_engine.contracts import SolveResult

log = logging.getLogger("atlas.engine.telemetry")
SOLVES_STREAM = "atlas:solves"
SOLVES_MAXLEN = 100_000
Source = Literal["solve", "task"]
K_BUCKETS = (1, 2, 3, 5, 8, 10, 16, 20, 32, 50)
TOKEN_BUCKETS = (256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)


class Telemetry:
    def __init__(self, redis: Redis, registry: CollectorRegistry) -> None:
        self._redis = redis
        self.solves = Counter("atlas_solves_total", "Verified solves by outcome", ["status", "stopped", "verified"],
                              registry=registry)
        self.candidates = Counter("atlas_solve_candidates_total", "Candidates generated", ["origin"],
                                  registry=registry)
        self.tokens = Counter("atlas_solve_tokens_total", "Tokens spent by solves", ["kind"], registry=registry)
        self.seconds = Histogram("atlas_solve_seconds", "Solve wall time by part", ["part"], registry=registry,
                                 buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600))
        self.k = Histogram("atlas_solve_k", "Samples generated per solve (the k it used)", registry=registry,
                           buckets=K_BUCKETS)
        self.tokens_per_solve = Histogram("atlas_solve_tokens_per_solve", "Prompt + completion tokens per solve",
                                          registry=registry, buckets=TOKEN_BUCKETS)
        self.repair_rounds = Counter("atlas_solve_repair_rounds_total", "Repair rounds run by solves",
                                     registry=registry)
        self.repairs = Counter("atlas_solve_repairs_total", "Solves that ran repair: fixed (ended verified) or "
                               "failed", ["result"], registry=registry)
        self.sandbox_calls = Counter("atlas_solve_sandbox_calls_total", "Sandbox calls made by solves",
                                     registry=registry)
        self.sandbox_runs = Counter("atlas_solve_sandbox_runs_total", "Programs the sandbox ran for solves (a judge "
                                    "call of c candidates on t tests is c x t)", registry=registry)
        self.checks = Counter("atlas_solve_checks_total", "Checks the model wrote for solves: assert (a function's) "
                              "or input (a program's, generator output included)", ["kind"], registry=registry)
        self.plans = Counter("atlas_solve_plans_total", "Plans candidates were written from (PlanSearch)",
                             registry=registry)
        self.lens_picks = Counter("atlas_lens_picks_total", "Solves whose candidates the Lens scored, by whether "
                                  "its energies changed the selected candidate", ["changed"], registry=registry)
        for kind in ("assert", "input"):
            self.checks.labels(kind)
        for changed in ("true", "false"):
            self.lens_picks.labels(changed)
        for result in ("fixed", "failed"):  # both series exist from the start (a rate over them reads 0, not absent)
            self.repairs.labels(result)

    async def record(self, result: SolveResult, problem: str, user_id: str | None, *, source: Source = "solve",
                     task_id: str = "") -> None:
        """Never fails the solve: a Redis outage loses the record (logged), not the answer. ``problem`` is only
        hashed: the record never holds its text."""
        samples = sum(1 for c in result.candidates if c.origin == "sample")
        spent = result.tokens.prompt + result.tokens.completion
        sandbox_calls = result.timings.sandbox_calls
        self.solves.labels(result.status, result.stopped, "true" if result.verified else "false").inc()
        for c in result.candidates:
            self.candidates.labels(c.origin).inc()
        self.tokens.labels("prompt").inc(result.tokens.prompt)
        self.tokens.labels("completion").inc(result.tokens.completion)
        for part in ("total_s", "llm_s", "sandbox_s", "overhead_s"):
            self.seconds.labels(part.removesuffix("_s")).observe(getattr(result.timings, part))
        self.k.observe(samples)
        self.tokens_per_solve.observe(spent)
        self.sandbox_calls.inc(sandbox_calls)
        self.sandbox_runs.inc(result.timings.sandbox_runs)
        self.checks.labels("assert").inc(result.tests.self_written)
        self.checks.labels("input").inc(result.tests.generated_inputs)
        self.plans.inc(len(result.plans))
        if result.lens_changed_pick is not None:
            self.lens_picks.labels("true" if result.lens_changed_pick else "false").inc()
        if result.repair_rounds:
            self.repair_rounds.inc(result.repair_rounds)
            self.repairs.labels("fixed" if result.verified else "failed").inc()
        entry = {
            "ts": f"{time.time():.3f}", "id": result.id, "source": source, "task_id": task_id,
            "user_id": user_id or "",
            "problem_hash": hashlib.sha256(problem.encode()).hexdigest()[:16], "language": result.language,
            "k": str(samples),
            "candidates": str(len(result.candidates)),
            "verdicts": json.dumps([c.verdict for c in result.candidates]),
            "winner": "" if result.winner is None else str(result.winner), "status": result.status,
            "verified": "1" if result.verified else "0", "stopped": result.stopped,
            "repair_rounds": str(result.repair_rounds), "self_tests": str(result.tests.self_written),
            "generated_inputs": str(result.tests.generated_inputs), "plans": str(len(result.plans)),
            "prompt_tokens": str(result.tokens.prompt), "completion_tokens": str(result.tokens.completion),
            "sandbox_calls": str(sandbox_calls), "sandbox_runs": str(result.timings.sandbox_runs),
            "llm_s": str(result.timings.llm_s), "sandbox_s": str(result.timings.sandbox_s),
            "total_s": str(result.timings.total_s),
            "lens_changed": "" if result.lens_changed_pick is None else str(int(result.lens_changed_pick)),
            "difficulty": "" if result.difficulty is None else str(result.difficulty),
        }
        try:
            await self._redis.xadd(SOLVES_STREAM, entry, maxlen=SOLVES_MAXLEN, approximate=True)  # type: ignore[arg-type]
        except RedisError as exc:
            log.warning("could not record the solve: %s", exc)
