"""End to end: ``atlas up`` with the real default models, every /readyz, a chat completion on llama-server A,
an embedding on B, a crash recovered by the supervisor, then ``atlas down`` leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from atlas_cli.process import start_time
from atlas_core.capability import mint, signing_key
from tests.cli.test_supervisor import processes_of, wait_for

pytestmark = pytest.mark.e2e


def atlas(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ATLAS_")} | env
    return subprocess.run([sys.executable, "-m", "atlas_cli", *args], env=clean, capture_output=True, text=True,
                          timeout=timeout)


def status(env: dict[str, str]) -> dict[str, Any]:
    result = atlas("status", "--json", env=env)
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def use_the_models(api: openai.OpenAI) -> None:
    models = {m.id for m in api.models.list()}
    assert {"SmolLM2-135M-Instruct.Q4_1", "all-MiniLM-L6-v2", "atlas"} <= models
    chat = api.chat.completions.create(model="SmolLM2-135M-Instruct.Q4_1", max_tokens=24, temperature=0,
                                       messages=[{"role": "user", "content": "Say hello."}])
    assert chat.choices[0].message.content and chat.usage is not None and chat.usage.completion_tokens > 0
    chunks = list(api.chat.completions.create(
        model="SmolLM2-135M-Instruct.Q4_1", max_tokens=16, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Count to three."}]))
    assert any(c.choices and c.choices[0].delta.content for c in chunks)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert len(api.embeddings.create(model="all-MiniLM-L6-v2", input="def f(): pass").data[0].embedding) == 384


def check_the_front_door(printed: str, state_dir: Path, proxy: str, env: dict[str, str]) -> None:
    """The first start's admin key works through the proxy with the official OpenAI client, and keys made
    with `atlas keys` work until revoked."""
    admin = json.loads((state_dir / "admin.json").read_text())
    assert f"first API key {admin['key']}" in printed and admin["password"] in printed
    with openai.OpenAI(base_url=f"{proxy}/v1", api_key=admin["key"], max_retries=0, timeout=120) as api:
        use_the_models(api)

    created = atlas("keys", "create", "e2e", "--rpm", "5", env=env)
    assert created.returncode == 0, created.stderr
    new_key = created.stdout.strip().splitlines()[-1]
    assert new_key.startswith("sk-llm-")
    listed = json.loads(atlas("keys", "list", "--json", env=env).stdout)
    key_id = next(k["id"] for k in listed if k["name"] == "e2e")
    with openai.OpenAI(base_url=f"{proxy}/v1", api_key=new_key, max_retries=0) as user:
        assert user.models.list().data
        assert atlas("keys", "revoke", str(key_id), env=env).returncode == 0
        time.sleep(1.0)
        with pytest.raises(openai.AuthenticationError):
            user.models.list()


def check_the_sandbox(row: dict[str, Any], secrets: dict[str, str]) -> None:
    """The sandbox runs isolated, accepts a token signed with the key atlas up gave the callers, and never
    received that signing key itself."""
    service = {"Authorization": f"Bearer {secrets['ATLAS_SERVICE_TOKEN']}"}
    info = httpx.get(f"{row['url']}/languages", headers=service, timeout=10).json()
    assert (info["isolation"], info["seccomp"]) == ("bwrap", True)
    token = mint(signing_key(secrets["ATLAS_SANDBOX_SIGNING_KEY"]), issuer="e2e", task_id="e2e",
                 languages=["python"])
    run = httpx.post(f"{row['url']}/execute", headers={"Authorization": f"Bearer {token}"}, timeout=30,
                     json={"code": "import os\nprint(os.getuid())"})
    assert run.status_code == 200 and run.json()["stdout"] == "65534\n", run.text
    environ = Path(f"/proc/{row['pid']}/environ").read_bytes()
    assert b"ATLAS_SANDBOX_VERIFY_KEY" in environ and b"ATLAS_SANDBOX_SIGNING_KEY" not in environ


def test_atlas_up_serves_real_models_and_down_leaves_nothing(platform_env: dict[str, str]) -> None:
    state_dir = Path(platform_env["ATLAS_STATE_DIR"])
    try:
        up = atlas("up", env=platform_env)
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"ATLAS is up (state directory {state_dir})" in up.stdout

        report = status(platform_env)
        services = {row["name"]: row for row in report["services"]}
        assert set(services) == {"redis", "llama-server", "embedding-server", "sandbox", "api-portal", "rag-api",
                                 "llm-proxy", "task-worker", "dashboard"}
        assert all(row["ready"] and row["pid"] for row in services.values()), report
        for name, row in services.items():
            if name not in ("redis", "llama-server", "embedding-server"):
                ready = httpx.get(f"{row['url']}/readyz", timeout=5)
                assert ready.status_code == 200, (name, ready.text)
                assert set(ready.json()["checks"].values()) == {"ok"}

        secrets = dict(line.split("=", 1) for line in (state_dir / "secrets.env").read_text().splitlines())
        key = {"Authorization": f"Bearer {secrets['ATLAS_LLAMA_API_KEY']}"}
        assert secrets["ATLAS_LLAMA_API_KEY"] not in up.stdout + up.stderr

        llama = services["llama-server"]["url"]
        assert httpx.post(f"{llama}/v1/chat/completions", json={"messages": []}, timeout=10).status_code == 401
        chat = httpx.post(f"{llama}/v1/chat/completions", headers=key, timeout=120, json={
            "messages": [{"role": "user", "content": "Write a Python function that adds two numbers."}],
            "max_tokens": 48, "temperature": 0,
        })
        assert chat.status_code == 200, chat.text
        assert chat.json()["usage"]["completion_tokens"] > 0
        assert chat.json()["choices"][0]["message"]["content"].strip()

        embed = httpx.post(f"{services['embedding-server']['url']}/v1/embeddings", headers=key, timeout=60,
                           json={"input": ["def add(a, b):\n    return a + b"]})
        assert embed.status_code == 200, embed.text
        assert len(embed.json()["data"][0]["embedding"]) == 384

        check_the_sandbox(services["sandbox"], secrets)
        check_the_front_door(up.stdout, state_dir, services["llm-proxy"]["url"], platform_env)

        logs = atlas("logs", "llm-proxy", "-n", "3", env=platform_env)
        assert logs.returncode == 0
        assert json.loads(logs.stdout.splitlines()[-1])["service"] == "llm-proxy"

        again = atlas("up", env=platform_env)
        assert again.returncode == 0
        assert "already running" in again.stdout

        crashed = services["dashboard"]["pid"]
        os.kill(crashed, signal.SIGKILL)
        wait_for(lambda: next(r for r in status(platform_env)["services"] if r["name"] == "dashboard")["pid"]
                 not in (None, crashed), timeout=30)
        wait_for(lambda: all(r["ready"] for r in status(platform_env)["services"]), timeout=60)
    finally:
        down = atlas("down", env=platform_env, timeout=120)
    assert down.returncode == 0
    assert "ATLAS stopped" in down.stdout
    time.sleep(0.2)
    assert processes_of(state_dir) == []
    assert all(start_time(row["pid"]) is None for row in services.values())
    assert status(platform_env)["running"] is False
    logged = "".join(p.read_text(errors="replace") for p in (state_dir / "logs").glob("*.log"))
    assert not any(value in logged for value in secrets.values()), "a secret reached a log file"
