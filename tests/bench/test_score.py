"""The one sandbox client's retry policy (atlas_engine.sandbox.SandboxClient, which the engine and the bench's
scorer share), with a scripted sandbox behind ``httpx.MockTransport``: a busy sandbox (429/503) or a connection
refused or reset before an answer is asked again, with a new token, at most three times; a timeout and a refusal
are not. Then the scorer on top of it: an unreachable sandbox is no verdict, never a failed program."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest

from atlas_bench.problems import BenchProblem, Hidden
from atlas_bench.score import HiddenTestScorer, Score, ScorerUnavailable
from atlas_core.sandbox_api import JudgeRequest, ProgramIn, TestCase
from atlas_engine import SandboxClient, SandboxRefused, SandboxUnavailable
from tests.conftest import SANDBOX_SIGNING

Answer = Callable[[httpx.Request], httpx.Response]
PROBLEM = BenchProblem(id="t/1", dataset="t", prompt="",
                       hidden=Hidden(mode="assert", tests=[{"code": "assert f() == 1"}]))
PASSED = {"deadline_hit": False, "first_passing": 0, "elapsed_ms": 3.0, "candidates": [
    {"index": 0, "id": "answer", "verdict": "passed", "passed": True, "tests_passed": 1, "tests_run": 1,
     "tests_total": 1, "time_ms": 2.0}]}
REQUEST = JudgeRequest(mode="assert", candidates=[ProgramIn(code="pass")], tests=[TestCase(code="assert True")])


class Sandbox:
    """Answers each call with the next scripted answer, keeping every request."""

    def __init__(self, answers: list[Answer]) -> None:
        self.answers = answers
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answers.pop(0)(request)

    def claims(self) -> list[dict[str, Any]]:
        tokens = [r.headers["authorization"].removeprefix("Bearer ") for r in self.requests]
        return [jwt.decode(t, options={"verify_signature": False}) for t in tokens]


def reset(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadError("connection reset by peer", request=request)


def refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def closed(request: httpx.Request) -> httpx.Response:
    raise httpx.RemoteProtocolError("server disconnected without sending a response", request=request)


def too_slow(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("timed out", request=request)


def status(code: int, retry_after: str | None = None) -> Answer:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return lambda request: httpx.Response(code, json={"error": {"message": f"answer {code}"}}, headers=headers)


def judged(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=PASSED)


@pytest.fixture(autouse=True)
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits between attempts, recorded instead of slept. asyncio.sleep is one function for every thread: a
    server another test left running in its own thread (uvicorn ticks every 0.1 s) sleeps for real."""
    slept: list[float] = []
    real = asyncio.sleep

    async def sleep(seconds: float, *args: Any) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return await real(seconds, *args)
        slept.append(seconds)
        return None

    monkeypatch.setattr("atlas_engine.sandbox.asyncio.sleep", sleep)
    return slept


def judge(sandbox: Sandbox, **kwargs: Any) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(sandbox)) as http:
            client = SandboxClient(http, "http://sandbox/", SANDBOX_SIGNING, issuer="test", **kwargs)
            return (await client.judge(REQUEST, "task-1")).model_dump(exclude_defaults=True)

    return asyncio.run(main())


@pytest.mark.parametrize("first", [status(503, "1"), status(429, "1"), reset, refused, closed])
def test_a_busy_sandbox_or_a_lost_connection_is_asked_again_with_a_new_token(first: Answer) -> None:
    sandbox = Sandbox([first, judged])
    assert judge(sandbox) == PASSED
    assert len(sandbox.requests) == 2 and all(str(r.url) == "http://sandbox/judge" for r in sandbox.requests)
    first_claims, second_claims = sandbox.claims()
    assert first_claims["jti"] != second_claims["jti"]  # a token is good for one call only


def test_retry_after_is_honoured_within_bounds_and_retries_are_few(waits: list[float]) -> None:
    sandbox = Sandbox([status(503, "1"), status(429, "30"), status(503, "0"), status(503)])
    with pytest.raises(SandboxUnavailable, match=r"busy or not ready \(503\)") as raised:
        judge(sandbox)
    assert not isinstance(raised.value, SandboxRefused)
    assert len(sandbox.requests) == 4  # the call and three retries
    assert waits == [1.0, 2.0, 0.1]
    sandbox = Sandbox([refused] * 4)
    with pytest.raises(SandboxUnavailable, match=re.escape("unreachable (ConnectError)")):
        judge(sandbox)
    assert len(sandbox.requests) == 4 and waits[3:] == [0.5, 0.5, 0.5]


@pytest.mark.parametrize(("answer", "error", "message"), [
    (too_slow, SandboxUnavailable, "did not answer within 7 s"),  # it may still be running: not asked again
    (status(400), SandboxRefused, "answer 400"),
    (status(401), SandboxRefused, "answer 401"),
    (status(500), SandboxUnavailable, "answer 500"),
])
def test_a_timeout_or_a_refusal_is_not_retried(answer: Answer, error: type[Exception], message: str) -> None:
    sandbox = Sandbox([answer, judged])
    with pytest.raises(error, match=message) as raised:
        judge(sandbox, timeout_s=7)
    assert len(sandbox.requests) == 1
    assert isinstance(raised.value, SandboxRefused) == (error is SandboxRefused)


def test_the_token_lifetime_is_the_callers() -> None:
    sandbox = Sandbox([judged])
    judge(sandbox, token_ttl_s=120)
    (claims,) = sandbox.claims()
    assert claims["exp"] - claims["iat"] == 120 and claims["iss"] == "test" and claims["task"].startswith("task-1-")


def score(sandbox: Sandbox, problem: BenchProblem = PROBLEM, code: str = "def f(): ...") -> Score:
    async def main() -> Score:
        async with httpx.AsyncClient(transport=httpx.MockTransport(sandbox)) as http:
            return await HiddenTestScorer(http, "http://sandbox", SANDBOX_SIGNING).score(problem, code)

    return asyncio.run(main())


def test_the_scorer_judges_through_the_shared_client_with_its_deadline() -> None:
    sandbox = Sandbox([reset, status(503), judged])
    assert score(sandbox).passed
    assert len(sandbox.requests) == 3
    claims = sandbox.claims()[-1]
    assert claims["iss"] == "atlas-bench" and claims["exp"] - claims["iat"] == 120
    # the judge call may take its whole deadline (60 s + 6 s per test): the client waits 30 s longer
    assert sandbox.requests[-1].extensions["timeout"]["read"] == 96.0


@pytest.mark.parametrize(("answers", "message"), [
    ([reset] * 4, "unreachable (ReadError)"), ([status(503)] * 4, "busy or not ready"), ([too_slow], "within 96 s"),
    ([status(413)], "answer 413"),
    ([lambda r: httpx.Response(200, json=PASSED | {"deadline_hit": True})], "ran out of its deadline"),
    ([lambda r: httpx.Response(200, json={"deadline_hit": True, "candidates": [{"verdict": "Skipped"}]})],
     "not a result"),
])
def test_a_sandbox_that_does_not_judge_is_no_verdict(answers: list[Answer], message: str) -> None:
    with pytest.raises(ScorerUnavailable, match=re.escape(message)):
        score(Sandbox(answers))


def test_an_answer_the_sandbox_cannot_take_fails_without_a_call() -> None:
    sandbox = Sandbox([judged])
    refused = score(sandbox, code="print('\ud800')")
    assert (refused.passed, refused.verdict) == (False, "Refused") and sandbox.requests == []
