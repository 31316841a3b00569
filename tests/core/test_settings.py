from __future__ import annotations

from pathlib import Path

import pytest

from atlas_core.settings import SettingsError, load_settings, read_conf
from atlas_proxy.settings import Settings as ProxySettings
from tests.conftest import LLAMA_KEY, METRICS_TOKEN, PROXY_TOKEN

SECRETS = {"ATLAS_METRICS_TOKEN": METRICS_TOKEN, "ATLAS_PROXY_TOKEN": PROXY_TOKEN, "ATLAS_LLAMA_API_KEY": LLAMA_KEY}


def test_conf_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    conf = tmp_path / "atlas.conf"
    conf.write_text("# comment\nATLAS_PROXY_PORT=9100\nATLAS_LOG_LEVEL=debug\nATLAS_RAG_URL=\n")
    settings = load_settings(ProxySettings, environ={**SECRETS, "ATLAS_LOG_LEVEL": "WARNING"}, conf_file=conf)
    assert settings.port == 9100
    assert settings.log_level == "WARNING"
    assert settings.rag_url == "http://127.0.0.1:8001"  # empty value = unset = default


def test_conf_named_by_atlas_conf(tmp_path: Path) -> None:
    conf = tmp_path / "other.conf"
    conf.write_text("ATLAS_PROXY_PORT=9200\n")
    settings = load_settings(ProxySettings, environ={**SECRETS, "ATLAS_CONF": str(conf)})
    assert settings.port == 9200


def test_bad_value_names_the_key() -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(ProxySettings, environ={**SECRETS, "ATLAS_PROXY_PORT": "eighty"})
    assert "ATLAS_PROXY_PORT='eighty'" in str(error.value)
    with pytest.raises(SettingsError, match="ATLAS_PROXY_PORT='70000'"):
        load_settings(ProxySettings, environ={**SECRETS, "ATLAS_PROXY_PORT": "70000"})
    with pytest.raises(SettingsError, match="ATLAS_PORTAL_URL='localhost:3000': must be an http"):
        load_settings(ProxySettings, environ={**SECRETS, "ATLAS_PORTAL_URL": "localhost:3000"})


def test_missing_secret_is_required() -> None:
    with pytest.raises(SettingsError, match="ATLAS_METRICS_TOKEN is required"):
        load_settings(ProxySettings, environ={"ATLAS_LLAMA_API_KEY": LLAMA_KEY})


@pytest.mark.parametrize("weak", ["changeme", "password", "short-but-random-x1"])
def test_weak_secret_refused_without_echoing_it(weak: str) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(ProxySettings, environ={**SECRETS, "ATLAS_METRICS_TOKEN": weak})
    assert "ATLAS_METRICS_TOKEN=<hidden>" in str(error.value)
    assert weak not in str(error.value)


def test_read_conf_rejects_malformed_lines(tmp_path: Path) -> None:
    conf = tmp_path / "atlas.conf"
    conf.write_text("ATLAS_PROXY_PORT=1\nexport ATLAS_METRICS_TOKEN=do-not-echo-me\n")
    with pytest.raises(SettingsError, match=r"atlas.conf:2: expected KEY=value") as error:
        read_conf(conf)
    assert "do-not-echo-me" not in str(error.value)
    conf.write_bytes(b"ATLAS_PROXY_PORT=\xff\xfe\n")
    with pytest.raises(SettingsError, match="is not UTF-8 text"):
        read_conf(conf)


def test_secret_values_lists_raw_secrets() -> None:
    settings = load_settings(ProxySettings, environ=SECRETS)
    assert set(settings.secret_values()) >= {METRICS_TOKEN, LLAMA_KEY}
    assert METRICS_TOKEN not in repr(settings)


def test_the_process_environment_is_read_once_by_load_settings(service_env: dict[str, str],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A list key in the environment, as documented (comma-separated), is parsed like atlas.conf's;
    pydantic-settings once read the environment a second time, as JSON, failed, and quoted every secret."""
    from atlas_portal.settings import Settings as PortalSettings

    monkeypatch.setenv("ATLAS_PORTAL_TRUSTED_PROXIES", "10.0.0.9, 10.0.0.10")
    wanted = {"ATLAS_PORTAL_TRUSTED_PROXIES": "10.0.0.9, 10.0.0.10"}
    settings = load_settings(PortalSettings, environ=service_env | wanted)
    assert settings.portal_trusted_proxies == ["10.0.0.9", "10.0.0.10"]
    monkeypatch.setenv("ATLAS_LOG_LEVEL", "DEBUG")  # not passed in: the environment given is the only source
    assert load_settings(PortalSettings, environ=service_env).log_level == "INFO"
