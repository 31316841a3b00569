"""A taken port, a missing model, a bad key: one clear line naming the problem and its fix; nothing started."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest


def atlas(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ATLAS_")} | env
    return subprocess.run([sys.executable, "-m", "atlas_cli", *args], env=clean, capture_output=True, text=True,
                          timeout=120)


def assert_nothing_started(state_dir: Path) -> None:
    assert not (state_dir / "run" / "supervisor.pid").exists()
    assert not (state_dir / "logs").exists()


def test_taken_port_names_port_and_service(platform_env: dict[str, str]) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", int(platform_env["ATLAS_PROXY_PORT"])))
        holder.listen()
        result = atlas("up", env=platform_env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [f"atlas: error: port {platform_env['ATLAS_PROXY_PORT']} (llm-proxy) is already in use: "
                     f"stop what holds it (`ss -ltnp 'sport = :{platform_env['ATLAS_PROXY_PORT']}'`) "
                     "or choose another port in atlas.conf"]
    assert_nothing_started(Path(platform_env["ATLAS_STATE_DIR"]))


def test_two_services_on_one_port(platform_env: dict[str, str]) -> None:
    env = platform_env | {"ATLAS_RAG_PORT": platform_env["ATLAS_PROXY_PORT"]}
    result = atlas("up", env=env)
    assert result.returncode == 1
    assert "is configured for both rag-api and llm-proxy" in result.stderr


def test_missing_model_file(platform_env: dict[str, str], tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    result = atlas("up", "--model", str(missing), env=platform_env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"atlas: error: model file {missing} (ATLAS_MODEL_PATH) does not exist: fix the path or run `make install`"
    ]
    assert_nothing_started(Path(platform_env["ATLAS_STATE_DIR"]))


def test_model_that_is_not_gguf(platform_env: dict[str, str], tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"PK\x03\x04 not a model")
    result = atlas("up", env=platform_env | {"ATLAS_MODEL_PATH": str(fake)})
    assert result.returncode == 2
    assert "is not a GGUF file" in result.stderr
    assert_nothing_started(Path(platform_env["ATLAS_STATE_DIR"]))


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [("ATLAS_PROXY_PORT", "http", "ATLAS_PROXY_PORT='http'"),
     ("ATLAS_LOG_LEVEL", "LOUD", "ATLAS_LOG_LEVEL='LOUD'"),
     ("ATLAS_UP_TIMEOUT_S", "-5", "ATLAS_UP_TIMEOUT_S='-5'"),
     ("ATLAS_FROBNICATE", "1", "unknown key ATLAS_FROBNICATE in the environment")],
)
def test_bad_config_is_one_line(platform_env: dict[str, str], key: str, value: str, expected: str) -> None:
    result = atlas("up", env=platform_env | {key: value})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0]
    assert "Traceback" not in result.stderr


def test_status_and_down_when_not_running(platform_env: dict[str, str]) -> None:
    status = atlas("status", env=platform_env)
    assert status.returncode == 3
    assert "ATLAS is not running" in status.stdout
    down = atlas("down", env=platform_env)
    assert down.returncode == 0
    assert "was not running" in down.stdout
    logs = atlas("logs", "llm-proxy", env=platform_env)
    assert logs.returncode == 1
    assert "no log for 'llm-proxy'" in logs.stderr
