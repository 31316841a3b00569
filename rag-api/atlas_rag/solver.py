"""Runs solves for the routes: admission (a bounded number at once), the solve itself, and one telemetry record
per finished solve."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from atlas_engine import Engine, Solve, SolveRequest, SolveResult, Telemetry
from atlas_lens import FeedbackRecorder

SLOT_GRACE_S = 30.0  # past a solve's deadline, its admission slot is free whatever happened to its task
Emit = Callable[[dict[str, Any]], Awaitable[None]]


class SolverBusy(Exception):
    """As many solves as ATLAS_RAG_MAX_CONCURRENT allows are running already."""


class Solver:
    """Admission, the solve (the caller runs it as its own task, cancelled when the client goes), and one
    telemetry record per finished solve."""

    def __init__(self, engine: Engine, telemetry: Telemetry, limit: int, feedback: FeedbackRecorder) -> None:
        self.engine = engine
        self.telemetry = telemetry
        self.feedback = feedback
        self.limit = limit
        # Admitted solves and when their slot expires at the latest: a solve whose task never got to run
        # (its client left at once) cannot hold a slot past its own deadline.
        self._slots: dict[str, float] = {}

    @property
    def running(self) -> int:
        now = time.monotonic()
        self._slots = {k: until for k, until in self._slots.items() if until > now}
        return len(self._slots)

    def start(self, request: SolveRequest, token_cap: int | None = None) -> Solve:
        """Admit and parse a solve (SolverBusy, or ProblemError for bad input, before any work). The slot is taken
        here, so a burst of requests cannot all pass before any of them runs; ``run`` gives it back."""
        if self.running >= self.limit:
            raise SolverBusy()
        solve = self.engine.start(request)
        solve.token_cap = token_cap
        self._slots[solve.id] = time.monotonic() + solve.budget.deadline_s + SLOT_GRACE_S
        return solve

    async def run(self, solve: Solve, emit: Emit | None, user_id: str | None) -> SolveResult:
        solve.owner = user_id  # the router's patterns are the user's
        try:
            result = await self.engine.run(solve, emit)
        finally:
            self._slots.pop(solve.id, None)
        await self.telemetry.record(result, solve.problem.text, user_id)
        self.feedback.submit(result, solve.problem.text, user_id)  # in the background, where learning is on
        return result
