"""The sandbox's own Prometheus metrics, moved by real requests and read back from ``GET /metrics``:
``atlas_sandbox_verdicts_total{endpoint,language,verdict}``, ``atlas_sandbox_request_seconds{endpoint,language}``
and ``atlas_sandbox_token_rejections_total{reason}``."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from atlas_core.capability import mint
from atlas_sandbox.executor import Executor
from atlas_sandbox.languages import LANGUAGES
from atlas_sandbox.tokens import REJECTION_REASONS
from tests.conftest import METRICS_TOKEN
from tests.sandbox.conftest import Sandbox, moved, raw_token, redis_down

VERDICTS = "atlas_sandbox_verdicts_total"
SECONDS = "atlas_sandbox_request_seconds"
REJECTIONS = "atlas_sandbox_token_rejections_total"
PRINT = {"code": "print('ok')", "language": "python"}
ECHO_PY = "print(input())"
ECHO_JS = "console.log(require('fs').readFileSync(0, 'utf8').trim())"


def verdict(endpoint: str, language: str, given: str) -> str:
    return f'endpoint="{endpoint}",language="{language}",verdict="{given}"'


def timed(endpoint: str, language: str, le: str | None = None) -> str:
    return f'endpoint="{endpoint}",language="{language}"' + (f',le="{le}"' if le else "")


def test_execute_verdicts_are_counted_by_language(sandbox: Sandbox) -> None:
    before = sandbox.metrics()
    assert sandbox.execute("print(1)")["error_type"] is None
    assert sandbox.execute("print(2)", language="py")["error_type"] is None  # an alias counts as its language
    assert sandbox.execute("console.log(3)", language="javascript")["error_type"] is None
    assert sandbox.execute("raise ValueError('boom')")["error_type"] == "RuntimeError"
    after = sandbox.metrics()
    assert moved(before, after, VERDICTS) == {
        verdict("execute", "javascript", "passed"): 1,
        verdict("execute", "python", "RuntimeError"): 1,
        verdict("execute", "python", "passed"): 2,
    }


def test_judge_verdicts_are_counted_per_candidate_by_language(sandbox: Sandbox) -> None:
    before = sandbox.metrics()
    python = sandbox.judge(mode="stdin", candidates=[{"code": ECHO_PY}, {"code": "print('no')"}],
                           tests=[{"input": "metrics\n", "output": "metrics"}])
    assert [c["verdict"] for c in python["candidates"]] == ["passed", "TestFailure"]
    javascript = sandbox.judge(language="js", mode="stdin", candidates=[{"code": ECHO_JS}],
                               tests=[{"input": "metrics\n", "output": "metrics"}])
    assert [c["verdict"] for c in javascript["candidates"]] == ["passed"]
    after = sandbox.metrics()
    assert moved(before, after, VERDICTS) == {
        verdict("judge", "javascript", "passed"): 1,
        verdict("judge", "python", "TestFailure"): 1,
        verdict("judge", "python", "passed"): 1,
    }


def test_request_seconds_by_endpoint_and_language(sandbox: Sandbox) -> None:
    before = sandbox.metrics()
    sandbox.execute("print('quick')")
    slept = sandbox.execute("import time\ntime.sleep(0.3)\nprint('slept')")
    assert slept["stdout"] == "slept\n"
    sandbox.judge(language="javascript", mode="stdin", candidates=[{"code": ECHO_JS + " // timed"}],
                  tests=[{"input": "t\n", "output": "t"}])
    after = sandbox.metrics()
    assert moved(before, after, SECONDS + "_count") == {timed("execute", "python"): 2,
                                                        timed("judge", "javascript"): 1}
    spent = moved(before, after, SECONDS + "_sum")
    assert set(spent) == {timed("execute", "python"), timed("judge", "javascript")}
    assert spent[timed("execute", "python")] >= 0.3  # the answer took at least the program's sleep
    buckets = moved(before, after, SECONDS + "_bucket")
    assert buckets[timed("execute", "python", "+Inf")] == 2 and buckets[timed("judge", "javascript", "+Inf")] == 1
    assert buckets.get(timed("execute", "python", "0.25"), 0) <= 1  # the sleeper is never under 0.25 s
    assert {re.sub(r',le="[^"]*"', "", labels) for labels in buckets} == set(spent)


def test_refused_requests_give_no_verdict_time_or_new_language(sandbox: Sandbox) -> None:
    sandbox.execute("print('labelled')", language="PY")  # so that a language label exists
    before = sandbox.metrics()
    assert sandbox.post("/execute", {"code": "x", "language": "cobol"}).status_code == 400
    assert sandbox.post("/judge", {"language": "brainfuck", "mode": "stdin", "candidates": [{"code": "+"}],
                                   "tests": [{}]}, token="not-a-token").status_code == 401
    assert sandbox.client.post("/execute", json={"code": "x", "language": "x" * 32}).status_code == 401
    assert sandbox.post("/execute", {"code": "echo hi", "language": "bash"}, languages=("python",)).status_code == 403
    executor: Executor = sandbox.client.app.state.executor  # type: ignore[attr-defined]
    executor.active = executor.workers + sandbox.settings.sandbox_queue_limit
    try:
        assert sandbox.post("/execute", PRINT).status_code == 503
    finally:
        executor.active = 0
    after = sandbox.metrics()
    assert moved(before, after, VERDICTS) == {}
    assert moved(before, after, SECONDS + "_count") == {}
    # whatever was asked, the language label only ever holds a language of the registry
    known = {lang.name for lang in LANGUAGES}
    seen = {language for series in after.values() for labels in series
            for language in re.findall(r'language="([^"]*)"', labels)}
    assert seen and seen <= known, seen - known  # "python" for "PY"


def _no_header(sandbox: Sandbox) -> Any:
    return sandbox.client.post("/execute", json=PRINT)


def _basic_auth(sandbox: Sandbox) -> Any:
    return sandbox.client.post("/execute", json=PRINT, headers={"Authorization": "Basic dXNlcjpwYXNz"})


def _service_credential(sandbox: Sandbox) -> Any:
    return sandbox.post("/execute", PRINT, token=METRICS_TOKEN)


def _another_key(sandbox: Sandbox) -> Any:
    other = mint(Ed25519PrivateKey.generate(), issuer="x", task_id="t", languages=["python"])
    return sandbox.post("/execute", PRINT, token=other)


def _claims(**claims: Any) -> Callable[[Sandbox], Any]:
    return lambda sandbox: sandbox.post("/execute", PRINT, token=raw_token(sandbox, **claims))


def _used_twice(sandbox: Sandbox) -> Any:
    token = sandbox.token()
    assert sandbox.post("/execute", PRINT, token=token).status_code == 200
    return sandbox.post("/execute", PRINT, token=token)


def _language_outside_the_token(sandbox: Sandbox) -> Any:
    return sandbox.post("/judge", {"language": "bash", "mode": "stdin", "candidates": [{"code": "cat"}],
                                   "tests": [{"input": "a", "output": "a"}]}, languages=("python", "c"))


@pytest.mark.parametrize(("refuse", "status", "reason"), [
    pytest.param(_no_header, 401, "missing", id="no-header"),
    pytest.param(_basic_auth, 401, "missing", id="not-bearer"),
    pytest.param(_service_credential, 401, "invalid", id="service-credential"),
    pytest.param(_another_key, 401, "invalid", id="another-key"),
    pytest.param(_claims(aud="someone-else"), 401, "invalid", id="audience"),
    pytest.param(_claims(jti=None), 401, "invalid", id="no-jti"),
    pytest.param(_claims(langs="python"), 401, "invalid", id="langs"),
    pytest.param(_claims(limits={"memory_mb": -5}), 401, "invalid", id="limits"),
    pytest.param(_claims(exp=2_000_000_000), 401, "invalid", id="too-long-lived"),
    pytest.param(_claims(iat=1_000_000_000, exp=1_000_000_060), 401, "expired", id="expired"),
    pytest.param(_used_twice, 401, "reused", id="reused"),
    pytest.param(_language_outside_the_token, 403, "over_limit", id="language-outside-the-token"),
])
def test_token_rejections_are_counted_by_reason(sandbox: Sandbox, refuse: Callable[[Sandbox], Any],
                                                status: int, reason: str) -> None:
    before = sandbox.metrics()
    response = refuse(sandbox)
    assert response.status_code == status, response.text
    after = sandbox.metrics()
    assert moved(before, after, REJECTIONS) == {f'reason="{reason}"': 1}
    assert moved(before, after, VERDICTS) == ({verdict("execute", "python", "passed"): 1} if reason == "reused"
                                              else {})


def test_token_rejection_reasons_are_a_fixed_set_exported_from_the_start(sandbox: Sandbox) -> None:
    assert REJECTION_REASONS == ("missing", "invalid", "expired", "reused", "over_limit")
    assert set(sandbox.metrics()[REJECTIONS]) == {f'reason="{r}"' for r in REJECTION_REASONS}


def test_what_the_token_does_not_refuse_is_not_counted(sandbox: Sandbox) -> None:
    before = sandbox.metrics()
    # asking for more time than the token allows gets the token's limit, not a refusal
    lowered = sandbox.post("/execute", {**PRINT, "timeout": 30}, limits={"timeout_s": 1})
    assert lowered.status_code == 200 and lowered.json()["stdout"] == "ok\n"
    assert sandbox.post("/execute", {"code": "x", "language": "cobol"}).status_code == 400  # the language's fault

    with redis_down(sandbox):
        assert sandbox.post("/execute", PRINT).status_code == 503  # Redis's fault, not the token's
    after = sandbox.metrics()
    assert moved(before, after, REJECTIONS) == {}
    assert moved(before, after, VERDICTS) == {verdict("execute", "python", "passed"): 1}
