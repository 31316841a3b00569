"""``atlas up`` validates the whole configuration and generates secrets before it starts anything."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from atlas_cli.config import ALL_SETTINGS, secret_keys
from atlas_cli.plan import build_plan
from atlas_cli.runner import prepare
from atlas_core.settings import SettingsError, iter_keys
from atlas_proxy.settings import Settings as ProxySettings


def test_secrets_are_generated_once_private_and_never_printed(
    platform_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    config = prepare({}, None)
    secrets_file = Path(platform_env["ATLAS_STATE_DIR"]) / "secrets.env"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(secrets_file.parent.stat().st_mode) == 0o700
    values = dict(line.split("=", 1) for line in secrets_file.read_text().splitlines())
    assert set(values) == set(secret_keys())
    assert all(len(v) >= 32 for v in values.values())
    assert len(set(values.values())) == len(values)
    again = prepare({}, None)
    assert again.values["ATLAS_METRICS_TOKEN"] == config.values["ATLAS_METRICS_TOKEN"]
    printed = capsys.readouterr()
    assert not any(v in printed.out + printed.err for v in values.values())


def test_secrets_in_the_environment_win(platform_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    mine = "operator-chosen-token-" + "x" * 20
    monkeypatch.setenv("ATLAS_METRICS_TOKEN", mine)
    assert prepare({}, None).values["ATLAS_METRICS_TOKEN"] == mine


def test_urls_follow_ports_and_services_get_only_their_keys(platform_env: dict[str, str]) -> None:
    config = prepare({}, None)
    proxy = config.services["llm-proxy"]
    assert isinstance(proxy, ProxySettings)
    assert proxy.portal_url == f"http://127.0.0.1:{platform_env['ATLAS_PORTAL_PORT']}"
    assert proxy.llama_url == f"http://127.0.0.1:{platform_env['ATLAS_LLAMA_PORT']}"
    assert config.values["ATLAS_REDIS_URL"] == f"redis://127.0.0.1:{platform_env['ATLAS_REDIS_PORT']}/0"
    plan = {spec.name: spec for spec in build_plan(config)}
    assert "ATLAS_LLAMA_API_KEY" not in plan["dashboard"].env  # least privilege: it never calls the model
    assert "ATLAS_METRICS_TOKEN" not in plan["embedding-server"].env
    assert "ATLAS_PROXY_TOKEN" not in plan["sandbox"].env and "ATLAS_RECOVERY_TOKEN" not in plan["llm-proxy"].env
    assert plan["llm-proxy"].env["ATLAS_LLAMA_API_KEY"] == config.values["ATLAS_LLAMA_API_KEY"]
    assert all(config.values["ATLAS_LLAMA_API_KEY"] not in arg for spec in plan.values() for arg in spec.argv)


def test_the_dashboard_watches_every_process_and_the_portal_trusts_it(platform_env: dict[str, str],
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    plan = {spec.name: spec for spec in build_plan(prepare({}, None))}
    targets = dict(t.split("=", 1) for t in plan["dashboard"].env["ATLAS_DASHBOARD_TARGETS"].split(","))
    assert set(targets) == {"sandbox", "api-portal", "rag-api", "llm-proxy", "task-worker", "task-worker-2",
                            "dashboard"}
    assert targets["llm-proxy"] == plan["llm-proxy"].url
    probes = dict(t.split("=", 1) for t in plan["dashboard"].env["ATLAS_DASHBOARD_PROBES"].split(","))
    assert probes == {"llama-server": f"{plan['llama-server'].url}/health",
                      "embedding-server": f"{plan['embedding-server'].url}/readyz"}
    assert plan["api-portal"].env["ATLAS_PORTAL_TRUSTED_PROXIES"] == "127.0.0.1"

    monkeypatch.setenv("ATLAS_DASHBOARD_TARGETS", "mine=http://10.0.0.5:8000")  # the operator's choice stands
    monkeypatch.setenv("ATLAS_PORTAL_TRUSTED_PROXIES", "10.0.0.9")
    plan = {spec.name: spec for spec in build_plan(prepare({}, None))}
    assert plan["dashboard"].env["ATLAS_DASHBOARD_TARGETS"] == "mine=http://10.0.0.5:8000"
    assert plan["api-portal"].env["ATLAS_PORTAL_TRUSTED_PROXIES"] == "10.0.0.9"


def test_children_get_only_an_allowlisted_environment(platform_env: dict[str, str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-for-atlas")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    for spec in build_plan(prepare({}, None)):
        assert "AWS_SECRET_ACCESS_KEY" not in spec.env
        assert spec.env["LC_ALL"] == "C.UTF-8" and "PATH" in spec.env


def test_unknown_key_in_atlas_conf_is_refused_with_a_suggestion(platform_env: dict[str, str], tmp_path: Path) -> None:
    conf = tmp_path / "atlas.conf"
    conf.write_text("ATLAS_PROXY_PORTT=8000\n")
    expected = r"unknown key ATLAS_PROXY_PORTT in .*atlas.conf; did you mean ATLAS_PROXY_PORT\?"
    with pytest.raises(SettingsError, match=expected):
        prepare({}, conf)


def test_a_client_api_key_in_the_environment_is_not_an_unknown_key(
    platform_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATLAS_API_KEY", "sk-llm-" + "x" * 43)  # what `atlas solve` and OpenCode read
    assert "ATLAS_API_KEY" not in prepare({}, None).values


def test_bad_service_value_is_caught_before_anything_starts(
    platform_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATLAS_RAG_PORT", "not-a-port")
    with pytest.raises(SettingsError, match="ATLAS_RAG_PORT='not-a-port'"):
        prepare({}, None)


def test_external_redis_is_not_started(platform_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATLAS_REDIS_URL", "redis://10.0.0.5:6379/0")
    config = prepare({}, None)
    assert next(s.name for s in build_plan(config)) == "llama-server"
    assert "ATLAS_REDIS_PASSWORD" not in config.values


def test_every_setting_has_a_description() -> None:
    for cls in ALL_SETTINGS:
        for key, _, info in iter_keys(cls):
            assert info.description, f"{key} of {cls.__module__} needs a description"



def test_sandbox_gets_the_verify_key_and_only_callers_get_the_signing_key(platform_env: dict[str, str]) -> None:
    from atlas_core.capability import public_key_text
    from atlas_rag.settings import Settings as RagSettings
    from atlas_sandbox.settings import Settings as SandboxSettings

    config = prepare({}, None)
    signing = config.values["ATLAS_SANDBOX_SIGNING_KEY"]
    sandbox_env = config.env_for(SandboxSettings)
    assert sandbox_env["ATLAS_SANDBOX_VERIFY_KEY"] == public_key_text(signing)
    assert "ATLAS_SANDBOX_SIGNING_KEY" not in sandbox_env
    assert config.env_for(RagSettings)["ATLAS_SANDBOX_SIGNING_KEY"] == signing


def test_sandbox_key_prints_the_verify_key_of_the_signing_key_on_stdin() -> None:
    from atlas_core.capability import public_key_text

    secret = "s" * 40
    out = subprocess.run([sys.executable, "-m", "atlas_cli", "sandbox-key"], input=secret + "\n",
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == public_key_text(secret)
    empty = subprocess.run([sys.executable, "-m", "atlas_cli", "sandbox-key"], input="", capture_output=True,
                           text=True, timeout=60, check=False)
    assert empty.returncode != 0 and "standard input" in empty.stderr
