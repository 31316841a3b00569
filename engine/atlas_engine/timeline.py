"""Where a solve's wall time goes: time with an LLM call in flight, with a sandbox call in flight, and with
either (their union). Overhead is the wall time with neither: prompt building, parsing, selection, I/O."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

Kind = Literal["llm", "sandbox"]


class Timeline:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self._active: dict[str, int] = {"llm": 0, "sandbox": 0, "any": 0}
        self._since: dict[str, float] = {}
        self.busy: dict[str, float] = {"llm": 0.0, "sandbox": 0.0, "any": 0.0}
        self.calls: dict[str, int] = {"llm": 0, "sandbox": 0}
        self.runs = 0  # programs the sandbox ran: a judge call of c candidates on t tests is c x t runs

    @contextmanager
    def track(self, kind: Kind) -> Iterator[None]:
        self.calls[kind] += 1
        self._enter(kind)
        self._enter("any")
        try:
            yield
        finally:
            self._leave(kind)
            self._leave("any")

    def ran(self, programs: int) -> None:
        self.runs += programs

    def _enter(self, kind: str) -> None:
        if self._active[kind] == 0:
            self._since[kind] = time.monotonic()
        self._active[kind] += 1

    def _leave(self, kind: str) -> None:
        self._active[kind] -= 1
        if self._active[kind] == 0:
            self.busy[kind] += time.monotonic() - self._since.pop(kind)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def totals(self) -> dict[str, float]:
        """Seconds so far; calls still in flight count up to now."""
        now = time.monotonic()
        busy = {k: v + (now - self._since[k] if k in self._since else 0.0) for k, v in self.busy.items()}
        total = now - self.started
        return {"total_s": total, "llm_s": busy["llm"], "sandbox_s": busy["sandbox"],
                "overhead_s": max(0.0, total - busy["any"])}
