"""The verify-repair ("ralph") loop of one task, on the engine library ``atlas_engine`` (the one copy of the
generation, judging and repair logic, which rag-api uses too).

Each attempt is a whole verified solve on the task's own tests (or the examples in its prompt): k candidates,
judged in the sandbox, self-tests when the tests leave a choice, repair rounds. An attempt that fails hands its
best failing programs, with what failed, to the next one, whose repair rounds start from them; the next attempt
also samples more candidates (k x n) at a higher temperature (+0.15 per attempt, at most +0.4) with new seeds.
The loop ends with SUCCESS (an attempt's answer passes every test), MAX_ATTEMPTS, DEADLINE, or UNRECOVERABLE
(the task cannot run as given, or the sandbox refuses its language). Cancellation stops the attempt in flight
(the worker cancels this coroutine)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from redis.exceptions import RedisError

from atlas_core.budget import solve_ceiling
from atlas_core.errors import Unrecoverable
from atlas_core.queue import StopReason
from atlas_engine import MAX_K, Engine, ProblemError, SolveBudget, TaskRequest, Telemetry, problem_seed, rank_key
from atlas_lens import FeedbackRecorder
from atlas_worker.gate import NoRoomBeforeDeadline, TokenGate, TooBig

__all__ = ["StopReason", "TaskContext", "TaskOutcome", "VerifyRepair", "summarise"]

HEAT_STEP = 0.15
HEAT_CAP = 0.4
SEED_STEP = 7919  # a prime: attempt n's seeds never repeat attempt m's
SEED_RANGE = 2**31 - 1
CARRY = 2  # failing programs handed from one attempt to the next
Emit = Callable[[str, dict[str, Any]], Awaitable[None]]


@dataclass
class TaskContext:
    """What a handler gets: the task, its history so far (a reclaimed task resumes after its last finished
    attempt), its deadline (epoch seconds), and ``emit`` for its event stream."""

    task_id: str
    spec: dict[str, Any]
    record: dict[str, str]
    history: list[dict[str, Any]]
    worker: str
    emit: Emit
    record_attempt: Callable[[dict[str, Any]], Awaitable[None]]
    deadline_at: float = float("inf")
    max_attempts: int = 1
    gate: TokenGate | None = None  # the task's tokens per minute (None: no limit to respect)


@dataclass
class TaskOutcome:
    status: Literal["succeeded", "failed"]
    stop_reason: StopReason
    message: str
    result: dict[str, Any] | None = None
    attempts: int = 0
    tokens: dict[str, int] = field(default_factory=lambda: {"prompt": 0, "completion": 0})


def schedule(k: int, seed: int, n: int) -> tuple[int, float, int]:
    """Attempt ``n`` (from 1): candidates, temperature added to the engine's schedule, base seed (kept in the
    range a request's seed allows)."""
    return (min(MAX_K, k * n), min(HEAT_CAP, round(HEAT_STEP * (n - 1), 3)),
            (seed + SEED_STEP * (n - 1)) % SEED_RANGE)


def summarise(history: list[dict[str, Any]], language: str) -> tuple[int, dict[str, int], dict[str, Any] | None]:
    """What the finished attempts in ``history`` add up to: their number, their tokens, and the last one's
    answer as the task's result."""
    done = finished_attempts(history)
    tokens = {"prompt": sum(a["tokens"]["prompt"] for a in done),
              "completion": sum(a["tokens"]["completion"] for a in done)}
    last = done[-1] if done else None
    result = None if last is None else {"code": last["code"], "language": language, "verified": last["verified"],
                                        "summary": last["summary"], "attempt": last["n"]}
    return len(done), tokens, result


def finished_attempts(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The attempts, each once (by number), in order."""
    by_number = {a["n"]: a for a in history if a.get("kind") == "attempt"}
    return [by_number[n] for n in sorted(by_number)]


def ceiling(budget: SolveBudget, k: int, prompt: str) -> int:
    return solve_ceiling(k=k, max_tokens=budget.max_tokens, repair_rounds=budget.repair_rounds,
                         self_tests=budget.self_tests, prompt_chars=len(prompt), plans=budget.plans)


def fitted(budget: SolveBudget, k: int, prompt: str, limit: int) -> int:
    """The most candidates, up to ``k``, whose attempt fits within ``limit`` tokens (at least one)."""
    while k > 1 and limit and ceiling(budget, k, prompt) > limit:
        k -= 1
    return k


def progress_of(ctx: TaskContext, n: int) -> Callable[[dict[str, Any]], Awaitable[None]]:
    """The engine's progress lines as the task's events, tagged with the attempt."""
    async def progress(event: dict[str, Any]) -> None:
        await ctx.emit("progress", {"n": n, **event})
    return progress


class VerifyRepair:
    """The production handler: ``await VerifyRepair(engine, telemetry)(ctx)``. Each attempt's solve is recorded
    as rag-api records its solves (``source="task"``, the task's id, its owner)."""

    def __init__(self, engine: Engine, telemetry: Telemetry | None = None,
                 feedback: FeedbackRecorder | None = None) -> None:
        self.engine = engine
        self.telemetry = telemetry
        self.feedback = feedback

    async def __call__(self, ctx: TaskContext) -> TaskOutcome:
        task = TaskRequest.model_validate(ctx.spec)
        done = finished_attempts(ctx.history)
        carried: list[dict[str, Any]] = done[-1]["failing"] if done else []
        k = task.budget.k or self.engine.config.k
        seed = task.seed if task.seed is not None else problem_seed(task.prompt)

        def end(status: Literal["succeeded", "failed"], reason: StopReason, message: str) -> TaskOutcome:
            attempts, tokens, result = summarise(done, task.language)
            return TaskOutcome(status, reason, message, result, attempts, tokens)

        if done and done[-1]["verified"]:  # resumed after an attempt passed but before its result was stored
            return end("succeeded", "SUCCESS", f"verified on attempt {done[-1]['n']}: {done[-1]['summary']}")
        if done and done[-1]["stopped"] == "deadline":
            return end("failed", "DEADLINE", f"the deadline passed during attempt {done[-1]['n']}")

        for n in range(len(done) + 1, ctx.max_attempts + 1):
            remaining = ctx.deadline_at - time.time()
            if remaining <= 0:
                return end("failed", "DEADLINE", f"the deadline passed after {len(done)} attempt(s)")
            k_n, heat, seed_n = schedule(k, seed, n)
            try:
                # Failing code from before is worth nothing unless it goes back with its failures: a repair round.
                # The first attempt's route is the router's unless the task names k; later ones follow the schedule.
                routed = n == 1 and task.budget.k is None and self.engine.router is not None
                deadline_s, repairs = min(3600.0, remaining), 1 if carried else 0
                request = task.attempt(None if routed else k_n, deadline_s, seed_n, repairs)
                budget = self.engine.budget(request)
                if ctx.gate is not None and k_n != (fit := fitted(budget, k_n, task.prompt, ctx.gate.limit)):
                    k_n = fit  # a later attempt's larger k still has to fit in a minute's tokens
                    request = task.attempt(None if routed else k_n, deadline_s, seed_n, repairs)
                solve = self.engine.start(request)
                solve.owner = ctx.record.get("owner") or None
            except ProblemError as exc:
                return end("failed", "UNRECOVERABLE", f"the task cannot run as given: {exc}")
            if not solve.problem.tests:
                return end("failed", "UNRECOVERABLE", "there is nothing to verify against: give tests, or "
                                                      "examples in the prompt")
            solve.heat = heat
            self.engine.carry(solve, [p["code"] for p in carried])
            await ctx.emit("attempt", {"n": n, "k": k_n, "heat": heat, "carried": len(carried), "routed": routed,
                                       "message": f"attempt {n}/{ctx.max_attempts}: "
                                                  + (f"routed, within {k_n} candidates' tokens" if routed
                                                     else f"{k_n} candidate(s)")
                                                  + (f", repairing {len(carried)} from before" if carried else "")})
            started = time.time()
            reserved, reservation = ceiling(solve.budget, k_n, task.prompt), None
            if ctx.gate is not None:
                try:
                    reservation = await ctx.gate.acquire(reserved, ctx.deadline_at)
                except TooBig as exc:
                    return end("failed", "UNRECOVERABLE", f"{exc}: lower the task's budget or raise the limit")
                except NoRoomBeforeDeadline as exc:
                    return end("failed", "DEADLINE", str(exc))
                solve.token_cap = reserved  # the attempt never spends more than it reserved
            try:
                result = await self.engine.run(solve, progress_of(ctx, n))
            except Unrecoverable as exc:  # the sandbox refuses the task's language, say: no attempt can pass
                return end("failed", "UNRECOVERABLE", str(exc))
            finally:
                if ctx.gate is not None and reservation is not None:
                    with contextlib.suppress(RedisError):  # the reservation leaves the window within a minute anyway
                        await ctx.gate.settle(reservation, reserved, solve.prompt_tokens + solve.completion_tokens)
            if self.telemetry is not None:  # the solve ran to its answer: it counts, whatever the task does next
                await self.telemetry.record(result, solve.problem.text, ctx.record.get("owner") or None,
                                            source="task", task_id=ctx.task_id)
            if self.feedback is not None:  # kept for the Lens where the owner's learning is on
                self.feedback.submit(result, solve.problem.text, ctx.record.get("owner") or None, source="task")
            failing = sorted((c for c in solve.candidates if c.unique and not c.public_ok and c.failure),
                             key=rank_key)[:CARRY]
            attempt: dict[str, Any] = {
                "kind": "attempt", "n": n, "worker": ctx.worker, "started_at": started, "finished_at": time.time(),
                "k": k_n, "heat": heat, "seed": seed_n, "status": result.status, "verified": result.verified,
                "stopped": result.stopped, "summary": result.summary, "code": result.code,
                # verdicts only: the failing programs below are the code a later attempt needs
                "candidates": [c.model_dump(exclude_none=True, exclude={"code"}) for c in result.candidates],
                "tokens": {"prompt": result.tokens.prompt, "completion": result.tokens.completion},
                "route": result.route.model_dump() if result.route is not None else None,
                "failing": [{"index": c.index, "code": c.code, "failure": c.failure} for c in failing],
            }
            done.append(attempt)
            await ctx.record_attempt(attempt)
            await ctx.emit("passed" if result.verified else "failed",
                           {"n": n, "status": result.status, "summary": result.summary})
            if result.verified:
                return end("succeeded", "SUCCESS", f"verified on attempt {n}: {result.summary}")
            if result.stopped == "deadline":
                return end("failed", "DEADLINE", f"the deadline passed during attempt {n}")
            carried = attempt["failing"] or carried
        return end("failed", "MAX_ATTEMPTS", f"no answer passed every test in {len(done)} attempt(s)")
