"""Typed settings shared by every ATLAS service.

Every service has one ``pydantic-settings`` class built once in its ``__main__`` and passed in. Values come,
highest priority first, from keyword arguments, the environment, then the ``atlas.conf`` file named by
``ATLAS_CONF`` (or ``./atlas.conf`` when it exists). Keys are ``ATLAS_``-prefixed and unquoted::

    ATLAS_PROXY_PORT=8000
    ATLAS_LOG_LEVEL=INFO

An empty value (``ATLAS_PORTAL_URL=``) counts as unset, so ``atlas.conf.example`` can list keys whose value
is derived or generated without pinning one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

CONF_ENV = "ATLAS_CONF"
ENV_PREFIX = "ATLAS_"
MIN_SECRET_LENGTH = 32
# Values people paste from tutorials; refusing them is cheaper than finding them in production.
_KNOWN_WEAK = {"changeme", "change-me", "secret", "password", "admin", "default", "test", "dev", "atlas"}

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class GeneratedSecret:
    """Marks a required secret that ``atlas up`` generates into the state directory when it is missing."""


def _strong_secret(value: SecretStr) -> SecretStr:
    raw = value.get_secret_value()
    if raw.strip().lower() in _KNOWN_WEAK or len(raw) < MIN_SECRET_LENGTH:
        raise ValueError(
            f"must be at least {MIN_SECRET_LENGTH} random characters and not a known default; "
            "let `atlas up` generate it, or use `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )
    return value


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL, e.g. http://127.0.0.1:8000")
    return value.rstrip("/")


def _redis_url(value: str) -> str:
    if not value.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("must be a redis://host:port/db URL (put the password in ATLAS_REDIS_PASSWORD)")
    return value


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


Secret = Annotated[SecretStr, AfterValidator(_strong_secret), GeneratedSecret()]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
RedisUrl = Annotated[str, AfterValidator(_redis_url)]
Port = Annotated[int, Field(ge=1, le=65535)]


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/atlas``, else ``~/.local/state/atlas``."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "atlas"


class AtlasSettings(BaseSettings):
    """Keys every ATLAS process understands."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="ignore",  # atlas.conf holds every service's keys; `atlas up` rejects unknown ones
        env_ignore_empty=True,
        populate_by_name=True,
        validate_default=True,
    )

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        # ``load_settings`` merges atlas.conf and the environment itself and passes every value in. Letting
        # pydantic-settings read the environment again parsed it a second time, differently (a list key such as
        # ATLAS_PORTAL_TRUSTED_PROXIES=10.0.0.9 as JSON, which failed), and its error quoted every secret.
        return (init_settings,)

    log_level: Annotated[LogLevel, BeforeValidator(_upper)] = Field(
        "INFO", description="Log level of every service: DEBUG, INFO, WARNING or ERROR."
    )
    state_dir: Path = Field(
        default_factory=default_state_dir,
        description="Directory for local state: secrets, Redis data, database, logs. "
        "Default $XDG_STATE_HOME/atlas or ~/.local/state/atlas.",
    )

    @field_validator("state_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        # Children run with the state directory as working directory: a relative path would move.
        return value.expanduser().resolve()

    def secret_values(self) -> list[str]:
        """The raw values of every secret field, for the log redactor."""
        return [v.get_secret_value() for v in self.__dict__.values() if isinstance(v, SecretStr)]


def host_field(service: str, key: str) -> Any:
    """The bind address of one service, under its own key: exposing one service (the proxy) must never expose
    the others by the same setting."""
    return Field("127.0.0.1", validation_alias=key,
                 description=f"Address {service} binds to (0.0.0.0 to listen on every interface, as in containers).")


class HttpSettings(AtlasSettings):
    """Keys of every process that serves HTTP."""

    # Each service redeclares `port` and `host` with its own keys (ATLAS_PROXY_PORT, ATLAS_PROXY_HOST, ...).
    port: Port
    host: str


class ServiceSettings(HttpSettings):
    """Keys shared by the ATLAS services (each declares its port and the URLs it calls)."""

    metrics_token: Secret = Field(
        description="Credential for /metrics and the reasons behind /readyz on every service (Prometheus and "
        "`atlas status` hold it; it opens nothing else). Generated by atlas up."
    )
    redis_url: RedisUrl = Field("redis://127.0.0.1:6380/0", description="Redis the services share.")
    redis_user: str | None = Field(
        None, max_length=64, description="Redis ACL user of this service (atlas up gives each service its own, "
        "allowed only the commands and keys it needs). Unset: Redis's default user.")
    redis_password: SecretStr | None = Field(
        None, description="Password of this service's Redis user. atlas up generates one per service."
    )
    redis_pool: int = Field(
        64, ge=2, le=10_000, description="Most Redis connections one process opens; a request waiting longer than "
        "ATLAS_REDIS_POOL_WAIT_S for one gets 503.")
    redis_pool_wait_s: float = Field(2.0, gt=0, le=60, description="How long a request waits for a free Redis "
                                     "connection before it is answered 503.")
    redis_memory_alarm: float = Field(
        0.8, gt=0, le=1, description="Share of Redis's maxmemory at which /readyz and `atlas status` warn (Redis "
        "refuses writes at 100%: tasks and usage cannot be stored).")


class ProxyCredential(AtlasSettings):
    """The credential of llm-proxy, the only caller that may say which user a request is for."""

    proxy_token: Secret = Field(
        description="Credential llm-proxy presents to api-portal (key validation, model list) and rag-api, which "
        "trust the user identity only from it. Generated by atlas up."
    )


class LlamaClientSettings(ServiceSettings):
    """For services that call llama-server A (the main model)."""

    llama_url: HttpUrl = Field("http://127.0.0.1:8080", description="Base URL of llama-server A (main model).")
    llama_api_key: Secret = Field(
        description="API key llama-server A and B require from callers. Generated by atlas up."
    )


class SandboxClientSettings(ServiceSettings):
    """For services that run code in the sandbox."""

    sandbox_url: HttpUrl = Field("http://127.0.0.1:8020", description="Base URL of the sandbox service.")
    sandbox_signing_key: Secret = Field(
        description="Secret from which the Ed25519 key that signs sandbox capability tokens is derived "
        "(the sandbox gets only the public half, ATLAS_SANDBOX_VERIFY_KEY). Generated by atlas up."
    )


class TaskSettings(ServiceSettings):
    """The durable task queue, as rag-api (which accepts tasks) and the task-workers (which run them) see it."""

    task_ttl_s: int = Field(
        7 * 86400, ge=60, le=90 * 86400,
        description="How long a task's record, attempts and events are kept after their last change.")


S = TypeVar("S", bound=BaseSettings)


class SettingsError(Exception):
    """A settings class refused its input; ``str()`` gives one line per bad key."""


def env_name(cls: type[BaseSettings], field: str) -> str:
    """The environment / atlas.conf key of a field: its alias, else ``ATLAS_`` + its upper-cased name."""
    info = cls.model_fields[field]
    if isinstance(info.validation_alias, str):
        return info.validation_alias
    return ENV_PREFIX + field.upper()


def iter_keys(cls: type[BaseSettings]) -> Iterator[tuple[str, str, FieldInfo]]:
    """``(key, field name, field info)`` for every setting of a class."""
    for name, info in cls.model_fields.items():
        yield env_name(cls, name), name, info


def is_secret(info: FieldInfo) -> bool:
    return info.annotation is SecretStr or "SecretStr" in str(info.annotation)


def is_generated_secret(info: FieldInfo) -> bool:
    return any(isinstance(m, GeneratedSecret) for m in info.metadata)


def conf_path(environ: Mapping[str, str] | None = None) -> Path | None:
    """The atlas.conf in force: ``$ATLAS_CONF``, else ``./atlas.conf`` when it exists."""
    env = os.environ if environ is None else environ
    if env.get(CONF_ENV):
        return Path(env[CONF_ENV])
    local = Path("atlas.conf")
    return local if local.is_file() else None


def read_conf(path: Path) -> dict[str, str]:
    """Parse ``KEY=value`` lines (comments and blank lines skipped; values unquoted, empty = unset).

    Raises SettingsError naming the line for anything else, so a typo never passes silently.
    """
    values: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise SettingsError(f"cannot read config file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SettingsError(f"config file {path} is not UTF-8 text") from None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            # The line itself is not echoed: it may be a secret pasted with the wrong syntax.
            raise SettingsError(f"{path}:{number}: expected KEY=value (unquoted, no 'export')")
        value = value.strip()
        if value:
            values[key.upper()] = value
    return values


def describe(cls: type[BaseSettings], exc: ValidationError) -> str:
    """One line per error, naming the key and the fix, never echoing a secret's value."""
    lines = []
    for err in exc.errors():
        field = str(err["loc"][0]) if err["loc"] else ""
        info: FieldInfo | None
        if field in cls.model_fields:
            key, info = env_name(cls, field), cls.model_fields[field]
        else:  # the loc is already the alias
            key, info = field, next((i for k, _, i in iter_keys(cls) if k == field), None)
        if err["type"] == "missing":
            lines.append(f"{key} is required: set it in atlas.conf or the environment")
            continue
        shown = "<hidden>" if info is not None and is_secret(info) else repr(err.get("input"))
        message = str(err["msg"]).removeprefix("Value error, ")
        lines.append(f"{key}={shown}: {message}")
    return "; ".join(lines)


def load_settings(
    cls: type[S],
    environ: Mapping[str, str] | None = None,
    conf_file: Path | None = None,
    read_conf_file: bool = True,
) -> S:
    """Build ``cls`` from atlas.conf and the environment, raising SettingsError with readable lines.

    ``environ`` replaces ``os.environ`` (the local runner validates every service's settings before it
    starts any of them); the file named by ``conf_file`` or ``ATLAS_CONF`` sits under the environment
    unless ``read_conf_file`` is false (the runner has merged it already).
    """
    env = dict(os.environ if environ is None else environ)
    path = (conf_file or conf_path(env)) if read_conf_file else None
    merged = (read_conf(path) if path is not None else {}) | {k.upper(): v for k, v in env.items() if v}
    kwargs: dict[str, Any] = {}
    for key, name, info in iter_keys(cls):
        if key in merged:
            kwargs[info.validation_alias if isinstance(info.validation_alias, str) else name] = merged[key]
    try:
        # Everything is passed explicitly, so the process environment cannot leak in a second time.
        return cls.model_validate(kwargs)
    except ValidationError as exc:
        raise SettingsError(describe(cls, exc)) from None
