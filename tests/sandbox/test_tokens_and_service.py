"""Capability tokens (who may run what, with which limits) and the service's behaviour under load and failure."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from atlas_core.capability import mint, public_key_text
from atlas_core.settings import SettingsError, load_settings
from atlas_sandbox.app import create_app
from atlas_sandbox.executor import Executor
from atlas_sandbox.settings import Settings
from tests.conftest import RedisServer
from tests.sandbox.conftest import Sandbox, raw_token, redis_down, sandbox_env

PRINT = {"code": "print('ok')", "language": "python"}


def test_no_token_or_the_service_token_is_refused(sandbox: Sandbox) -> None:
    assert sandbox.client.post("/execute", json=PRINT).status_code == 401
    service = sandbox.settings.metrics_token.get_secret_value()
    response = sandbox.post("/execute", PRINT, token=service)
    assert response.status_code == 401 and "capability" in response.json()["error"]["message"]


def test_a_token_works_once(sandbox: Sandbox) -> None:
    token = sandbox.token()
    assert sandbox.post("/execute", PRINT, token=token).status_code == 200
    again = sandbox.post("/execute", PRINT, token=token)
    assert again.status_code == 401 and "already used" in again.json()["error"]["message"]


@pytest.mark.parametrize(("claims", "message"), [
    ({"exp": int(time.time()) - 60}, "expired"),
    ({"aud": "someone-else"}, "invalid"),
    ({"jti": None}, "invalid"),
    ({"exp": int(time.time()) + 3600}, "longer than 300"),
    ({"langs": "python"}, "langs"),
    ({"limits": {"memory_mb": -5}}, "limits"),
])
def test_bad_tokens_are_refused(sandbox: Sandbox, claims: dict[str, Any], message: str) -> None:
    response = sandbox.post("/execute", PRINT, token=raw_token(sandbox, **claims))
    assert response.status_code == 401
    assert message in response.json()["error"]["message"]


def test_a_token_signed_by_another_key_is_refused(sandbox: Sandbox) -> None:
    other = mint(Ed25519PrivateKey.generate(), issuer="x", task_id="t", languages=["python"])
    assert sandbox.post("/execute", PRINT, token=other).status_code == 401


def test_the_token_scopes_languages(sandbox: Sandbox) -> None:
    response = sandbox.post("/execute", {"code": "echo hi", "language": "bash"}, languages=("python",))
    assert response.status_code == 403 and "bash" in response.json()["error"]["message"]
    unknown = sandbox.post("/execute", {"code": "x", "language": "cobol"})
    assert unknown.status_code == 400 and "cobol" in unknown.json()["error"]["message"]


def test_limits_are_the_minimum_of_service_token_and_request(sandbox: Sandbox) -> None:
    sleepy = {"code": "import time\ntime.sleep(3)\nprint('woke')", "language": "python"}
    by_token = sandbox.post("/execute", sleepy, limits={"timeout_s": 1}).json()
    assert by_token["error_type"] == "Timeout" and by_token["execution_time_ms"] < 2500
    by_request = sandbox.post("/execute", {**sleepy, "timeout": 1}).json()
    assert by_request["error_type"] == "Timeout"
    # a token or request asking for more than the service allows gets the service's ceiling
    greedy = sandbox.post("/execute", {**sleepy, "limits": {"memory_mb": 60000}}, limits={"timeout_s": 500}).json()
    assert greedy["stdout"] == "woke\n"
    hungry = "x = bytearray(300 * 1024 * 1024)\nprint(len(x))"
    assert sandbox.post("/execute", {"code": hungry}, limits={"memory_mb": 100}).json()["error_type"] == "MemoryLimit"


def test_bad_requests_name_the_field(sandbox: Sandbox) -> None:
    response = sandbox.post("/judge", {"mode": "nope", "candidates": [{"code": "x"}], "tests": [{}]})
    assert response.status_code == 400 and "mode" in response.json()["error"]["message"]
    response = sandbox.post("/execute", {"code": "x", "surprise": 1})
    assert response.status_code == 400 and "surprise" in response.json()["error"]["message"]


def test_redis_down_is_503_not_a_hang(sandbox: Sandbox, redis_server: RedisServer) -> None:
    with redis_down(sandbox):
        response = sandbox.post("/execute", PRINT)
    assert response.status_code == 503 and "Redis" in response.json()["error"]["message"]


def test_busy_service_answers_503_with_retry_after(sandbox: Sandbox) -> None:
    executor: Executor = sandbox.client.app.state.executor  # type: ignore[attr-defined]
    executor.active = executor.workers + sandbox.settings.sandbox_queue_limit
    try:
        response = sandbox.post("/execute", PRINT)
    finally:
        executor.active = 0
    assert response.status_code == 503 and response.headers["retry-after"] == "1"


def test_a_sandbox_failure_is_a_5xx_never_a_program_verdict(sandbox: Sandbox) -> None:
    executor: Executor = sandbox.client.app.state.executor  # type: ignore[attr-defined]
    real = executor.runner.config
    executor.runner.config = type(real)(**{**real.__dict__, "bwrap": "/nonexistent/bwrap"})
    try:
        executed = sandbox.post("/execute", {"code": "print('fresh 1')"})
        judged = sandbox.post("/judge", {"mode": "stdin", "candidates": [{"code": "print('fresh 2')"}],
                                         "tests": [{"input": "", "output": "x"}]})
    finally:
        executor.runner.config = real
    for response in (executed, judged):
        assert response.status_code == 500
        assert response.json()["error"]["code"] == "sandbox_error"
        assert "not the program" in response.json()["error"]["message"]


def test_verify_key_is_checked_at_start(redis_server: RedisServer, tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="ATLAS_SANDBOX_VERIFY_KEY"):
        load_settings(Settings, environ=sandbox_env(redis_server, tmp_path, ATLAS_SANDBOX_VERIFY_KEY="short"))


def test_isolation_none_runs_but_warns(redis_server: RedisServer, tmp_path: Path,
                                       caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(Settings, environ=sandbox_env(redis_server, tmp_path, ATLAS_SANDBOX_ISOLATION="none"))
    with caplog.at_level("WARNING"), TestClient(create_app(settings)) as client:
        sandbox = Sandbox(client, settings)
        assert sandbox.execute("print('plain')")["stdout"] == "plain\n"
    assert any("WITHOUT isolation" in r.getMessage() for r in caplog.records)


def test_missing_bubblewrap_refuses_to_start(redis_server: RedisServer, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap, no setpriv
    settings = load_settings(Settings, environ=sandbox_env(redis_server, tmp_path))
    with pytest.raises(Exception, match="sandbox"), TestClient(create_app(settings)):
        pass


def test_public_key_is_derived_not_shared() -> None:
    assert public_key_text("a" * 40) == public_key_text("a" * 40) != public_key_text("b" * 40)


def test_runs_read_their_files_whatever_the_service_umask(sandbox: Sandbox) -> None:
    old = os.umask(0o077)  # as `atlas up` starts services
    try:
        out = sandbox.execute("import helper\nprint(helper.X)", files={"helper.py": "X = 'read'\n"})
    finally:
        os.umask(old)
    assert out["stdout"] == "read\n", out


def test_lone_surrogates_are_a_400_naming_the_field(sandbox: Sandbox) -> None:
    token = sandbox.token()
    raw = '{"code": "print(\\"\\ud800\\")", "language": "python"}'
    response = sandbox.client.post("/execute", content=raw, headers={"Authorization": f"Bearer {token}",
                                                                     "Content-Type": "application/json"})
    assert response.status_code == 400 and "code" in response.json()["error"]["message"], response.text
    judged = sandbox.client.post("/judge", content='{"mode": "stdin", "candidates": [{"code": "pass"}], '
                                 '"tests": [{"input": "\\udc00", "output": ""}]}',
                                 headers={"Authorization": f"Bearer {sandbox.token()}",
                                          "Content-Type": "application/json"})
    assert judged.status_code == 400 and "input" in judged.json()["error"]["message"], judged.text


def test_a_malformed_request_neither_uses_up_its_token_nor_counts_as_a_rejection(sandbox: Sandbox) -> None:
    token = sandbox.token()
    before = sandbox.metrics()
    bad = sandbox.post("/judge", {"mode": "stdin", "candidates": [], "tests": [{}]}, token=token)
    assert bad.status_code == 400 and "candidates" in bad.json()["error"]["message"], bad.text
    no_token = sandbox.client.post("/execute", json={"code": "x", "surprise": 1})
    assert no_token.status_code == 400, no_token.text  # the body is checked before the token, as it always was
    assert sandbox.metrics().get("atlas_sandbox_token_rejections_total") == \
        before.get("atlas_sandbox_token_rejections_total")
    assert sandbox.post("/execute", PRINT, token=token).status_code == 200  # the token still works, once


def test_refusals_keep_their_error_codes(sandbox: Sandbox) -> None:
    missing = sandbox.client.post("/execute", json=PRINT)
    assert missing.json()["error"]["code"] == "invalid_capability" and missing.headers["www-authenticate"] == "Bearer"
    outside = sandbox.post("/execute", {"code": "echo hi", "language": "bash"}, languages=("python",))
    assert outside.json()["error"]["code"] == "language_not_allowed"
    unknown = sandbox.post("/execute", {"code": "x", "language": "cobol"})
    assert unknown.json()["error"]["code"] == "invalid_language"
    invalid = sandbox.post("/execute", {"code": "x", "language": "c", "test_code": "t"})
    assert invalid.status_code == 400 and invalid.json()["error"]["code"] == "invalid_request", invalid.text
    with redis_down(sandbox):
        down = sandbox.post("/execute", PRINT)
    assert down.json()["error"]["code"] == "dependency_unavailable" and down.headers["retry-after"] == "1"


def test_a_sandbox_with_no_redis_keeps_tokens_single_use_in_memory(tmp_path: Path) -> None:
    """ATLAS_SANDBOX_REPLAY_CACHE=memory (the Kubernetes manifests' setting, where the sandbox has no egress at all):
    it starts and serves with Redis unreachable, a token still works once, and the record is bounded."""
    from atlas_sandbox.tokens import MemoryJtiStore, TokenCheckUnavailable

    env = sandbox_env(RedisServer(port=1, password="unused-" + "x" * 24), tmp_path,
                      ATLAS_SANDBOX_REPLAY_CACHE="memory")
    settings = load_settings(Settings, environ=env)
    with TestClient(create_app(settings)) as client:
        sandbox = Sandbox(client, settings)
        token = sandbox.token()
        body = {"code": "print(6 * 7)", "language": "python"}
        first = client.post("/execute", json=body, headers={"Authorization": f"Bearer {token}"})
        assert first.status_code == 200 and first.json()["stdout"].strip() == "42"
        again = client.post("/execute", json=body, headers={"Authorization": f"Bearer {token}"})
        assert again.status_code == 401 and "already used" in again.json()["error"]["message"]
        assert client.get("/readyz").status_code == 200  # no Redis among its dependencies
    store = MemoryJtiStore(limit=2)

    async def claims() -> None:
        assert await store.claim("a", time.time() + 60) and await store.claim("b", time.time() - 1)
        assert await store.claim("c", time.time() + 60)  # the expired one made room
        with pytest.raises(TokenCheckUnavailable):
            await store.claim("d", time.time() + 60)

    asyncio.run(claims())
