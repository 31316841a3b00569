"""The scorer's transport rules, with a scripted sandbox: a busy sandbox or a dropped connection is asked again
(judging is idempotent); a sandbox that stays unreachable is no verdict, never a failed program."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import httpx
import pytest

from atlas_bench.datasets import Hidden, Problem
from atlas_bench.score import Score, Scorer, ScorerUnavailable
from tests.conftest import SANDBOX_SIGNING

PROBLEM = Problem(id="t/1", dataset="t", prompt="", hidden=Hidden(mode="assert", tests=[{"code": "assert f() == 1"}]))
PASSED = {"deadline_hit": False, "candidates": [{"verdict": "passed", "tests_passed": 1, "tests_total": 1}]}


def judge_with(answers: list[Callable[[httpx.Request], httpx.Response]]) -> tuple[Score, int]:
    calls = [0]

    def handler(request: httpx.Request) -> httpx.Response:
        calls[0] += 1
        return answers.pop(0)(request)

    async def main() -> Score:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            return await Scorer(http, "http://sandbox", SANDBOX_SIGNING).score(PROBLEM, "def f():\n    return 1\n")

    return asyncio.run(main()), calls[0]


def dropped(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadError("connection reset", request=request)


def busy(request: httpx.Request) -> httpx.Response:
    return httpx.Response(503, json={"error": {"message": "full"}})


def judged(request: httpx.Request) -> httpx.Response:
    assert request.headers["authorization"].startswith("Bearer ")
    return httpx.Response(200, json=PASSED)


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("atlas_bench.score.RETRY_WAITS_S", (0.0, 0.0, None))


def test_a_dropped_connection_or_a_busy_sandbox_is_asked_again() -> None:
    score, calls = judge_with([dropped, busy, judged])
    assert score.passed and score.verdict == "passed" and calls == 3


@pytest.mark.parametrize(("answer", "message"), [(dropped, "unreachable (ReadError)"), (busy, "answered 503")])
def test_a_sandbox_that_stays_down_is_no_verdict(answer: Callable[[httpx.Request], httpx.Response],
                                                message: str) -> None:
    with pytest.raises(ScorerUnavailable, match=re.escape(message)):
        judge_with([answer] * 3)
