"""Scoring one answer on a problem's hidden tests, once, in the sandbox (its ``/judge``), with LiveCodeBench's
rules: 6 s per test, stop at the first failure, stdin outputs compared line by line after strip with numbers
as decimals, functional results with ``==`` after tuples become lists. A program passes only if every test
passes. "The sandbox could not judge" is an error, never a verdict."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from typing import Any

import httpx

from atlas_bench.datasets import Problem
from atlas_core.capability import mint, signing_key

# a busy sandbox (429/503) or a dropped connection is asked again, then given up on; judging is idempotent
RETRY_WAITS_S: tuple[float | None, ...] = (1.0, 2.0, 4.0, None)


class ScorerUnavailable(Exception):
    """The sandbox did not judge (down, refused, overloaded): the task is not scored, and is retried later."""


@dataclass(frozen=True)
class Score:
    passed: bool
    verdict: str  # the sandbox's: passed, TestFailure, RuntimeError, Timeout, CompileError, ...
    tests_passed: int
    tests_total: int
    failure: dict[str, Any] | None = None


class Scorer:
    def __init__(self, http: httpx.AsyncClient, sandbox_url: str, signing_secret: str) -> None:
        self._http = http
        self._url = sandbox_url.rstrip("/")
        self._key = signing_key(signing_secret)

    async def score(self, problem: Problem, code: str | None) -> Score:
        return (await self.score_many(problem, [code]))[0]

    async def score_many(self, problem: Problem, codes: list[str | None]) -> list[Score]:
        """Each program's score, in order. Each distinct program is judged once, in its own sandbox call (so one
        slow program cannot run another out of the call's deadline), the calls concurrently."""
        hidden = problem.hidden
        distinct = list(dict.fromkeys(c for c in codes if c and c.strip()))
        judged = await asyncio.gather(*(self._judge(problem, code) for code in distinct))
        scores = dict(zip(distinct, judged, strict=True))
        return [scores[c] if c in scores else Score(False, "no_code", 0, len(hidden.tests)) for c in codes]

    async def _judge(self, problem: Problem, code: str) -> Score:
        hidden = problem.hidden
        body: dict[str, Any] = {
            "language": problem.language, "mode": hidden.mode, "candidates": [{"id": "answer", "code": code}],
            "tests": hidden.tests, "stop_on_first_failure": True, "limits": {"timeout_s": hidden.timeout_s},
            "deadline_s": min(3600.0, 60.0 + hidden.timeout_s * len(hidden.tests)),
        }
        if hidden.mode == "assert":
            body["setup"] = hidden.setup
        if hidden.mode == "functional":
            body["func_name"] = hidden.func_name
        for wait in RETRY_WAITS_S:
            token = mint(self._key, issuer="atlas-bench", task_id=f"{problem.id}-{secrets.token_hex(4)}",
                         languages=(problem.language,), ttl_s=120)  # checked on arrival
            try:
                answer = await self._http.post(f"{self._url}/judge", json=body, timeout=body["deadline_s"] + 30,
                                               headers={"Authorization": f"Bearer {token}"})
            except httpx.TimeoutException:
                raise ScorerUnavailable("the sandbox did not answer within its deadline") from None
            except httpx.HTTPError as exc:  # refused, reset, closed mid-answer
                if wait is None:
                    raise ScorerUnavailable(f"the sandbox is unreachable ({type(exc).__name__})") from None
            else:
                if answer.status_code not in (429, 503) or wait is None:
                    break
            await asyncio.sleep(wait)
        if answer.status_code != 200:
            raise ScorerUnavailable(f"the sandbox answered {answer.status_code}: {answer.text[:300]}")
        judged = answer.json()
        result = judged["candidates"][0]
        if judged.get("deadline_hit") or result["verdict"] == "Skipped":
            # tests left unrun are no verdict on the program: the task is retried, not failed
            raise ScorerUnavailable(f"the sandbox ran out of its deadline judging {problem.id}")
        return Score(result["verdict"] == "passed", result["verdict"], int(result["tests_passed"]),
                     int(result["tests_total"]), result.get("first_failure"))
