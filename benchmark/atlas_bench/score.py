"""Scoring one answer on a problem's hidden tests, once, in the sandbox (its ``/judge``), with LiveCodeBench's
rules: 6 s per test, stop at the first failure, stdin outputs compared line by line after strip with numbers
as decimals, functional results with ``==`` after tuples become lists. A program passes only if every test
passes. "The sandbox could not judge" is an error, never a verdict."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import httpx

from atlas_bench.datasets import Problem
from atlas_core.capability import mint, signing_key


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
        """Each program's score, in order, from one sandbox call (each distinct program is run once)."""
        hidden = problem.hidden
        distinct = list(dict.fromkeys(c for c in codes if c and c.strip()))
        scores: dict[str, Score] = {}
        if distinct:
            scores = dict(zip(distinct, await self._judge(problem, distinct), strict=True))
        return [scores[c] if c in scores else Score(False, "no_code", 0, len(hidden.tests)) for c in codes]

    async def _judge(self, problem: Problem, codes: list[str]) -> list[Score]:
        hidden = problem.hidden
        body: dict[str, Any] = {
            "language": problem.language, "mode": hidden.mode,
            "candidates": [{"id": str(i), "code": code} for i, code in enumerate(codes)],
            "tests": hidden.tests, "stop_on_first_failure": True, "limits": {"timeout_s": hidden.timeout_s},
            "deadline_s": min(3600.0, 60.0 + hidden.timeout_s * len(hidden.tests) * len(codes)),
        }
        if hidden.mode == "assert":
            body["setup"] = hidden.setup
        if hidden.mode == "functional":
            body["func_name"] = hidden.func_name
        token = mint(self._key, issuer="atlas-bench", task_id=f"{problem.id}-{secrets.token_hex(4)}",
                     languages=(problem.language,), ttl_s=120)  # checked on arrival
        try:
            answer = await self._http.post(f"{self._url}/judge", json=body, timeout=body["deadline_s"] + 30,
                                           headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as exc:
            raise ScorerUnavailable(f"the sandbox is unreachable ({type(exc).__name__})") from None
        if answer.status_code != 200:
            raise ScorerUnavailable(f"the sandbox answered {answer.status_code}: {answer.text[:300]}")
        by_id = {r["id"]: r for r in answer.json()["candidates"]}
        return [Score(r["verdict"] == "passed", r["verdict"], int(r["tests_passed"]), int(r["tests_total"]),
                      r.get("first_failure")) for r in (by_id[str(i)] for i in range(len(codes)))]
