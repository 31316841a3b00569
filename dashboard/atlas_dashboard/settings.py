"""dashboard settings."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import httpx
from pydantic import Field, field_validator

from atlas_core.settings import HttpUrl, Port, ServiceSettings, host_field

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
MAX_TARGETS = 64


@dataclass(frozen=True)
class Target:
    """A process the collector watches: a ``service`` (its /readyz and /metrics, with the metrics credential) or a
    ``probe`` (one URL that answers 200 when it is ready, such as llama-server's /health)."""

    name: str
    url: str
    kind: Literal["service", "probe"]

    @property
    def ready_url(self) -> str:
        return f"{self.url}/readyz" if self.kind == "service" else self.url

    @property
    def metrics_url(self) -> str:
        return f"{self.url}/metrics"


def _targets(value: str) -> str:
    entries = [e.strip() for e in value.split(",") if e.strip()]
    if len(entries) > MAX_TARGETS:
        raise ValueError(f"at most {MAX_TARGETS} entries")
    names = [entry.partition("=")[0] for entry in entries]
    if len(set(names)) != len(names):
        raise ValueError("each name once: two targets of one name would share one baseline")
    for entry in entries:
        name, sep, url = entry.partition("=")
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError):
            parsed = None
        if not sep or not NAME.match(name) or parsed is None or parsed.scheme not in ("http", "https") \
                or not parsed.host:
            raise ValueError(f"'{entry[:80]}' is not name=http://host:port (name: lower-case letters, digits, '-')")
    return value


class Settings(ServiceSettings):
    port: Port = Field(3001, validation_alias="ATLAS_DASHBOARD_PORT", description="dashboard HTTP port.")
    host: str = host_field("dashboard", "ATLAS_DASHBOARD_HOST")
    portal_url: HttpUrl = Field("http://127.0.0.1:3000", description="Base URL of api-portal (sign-in, usage).")
    dashboard_targets: str = Field(
        "", max_length=8192, description="Services the dashboard watches, name=base URL, comma-separated "
        "(their /readyz and /metrics, read with ATLAS_METRICS_TOKEN). atlas up sets it to every service it starts.")
    dashboard_probes: str = Field(
        "", max_length=8192, description="Processes without /metrics whose health the dashboard shows, name=URL "
        "that answers 200 when ready (llama-server's /health). atlas up sets it.")
    dashboard_scrape_s: float = Field(10.0, ge=0.2, le=300, description="Seconds between two collections.")
    dashboard_max_series: int = Field(
        2000, ge=10, le=100_000, description="Most samples the collector keeps from one process's /metrics (a bound "
        "on the history's size in Redis).")
    dashboard_session_ttl_s: int = Field(
        8 * 3600, ge=60, le=30 * 86400, description="Longest a dashboard sign-in lasts (it also ends when the "
        "portal's token does, and at sign-out).")
    dashboard_cookie_secure: bool = Field(
        False, description="Mark the session cookie Secure (set it when the dashboard is served over HTTPS; it "
        "is always Secure when the request itself came over HTTPS).")

    _check_targets = field_validator("dashboard_targets", "dashboard_probes")(_targets)

    def targets(self) -> list[Target]:
        def parse(value: str, kind: Literal["service", "probe"]) -> list[Target]:
            pairs = (e.strip().partition("=") for e in value.split(",") if e.strip())
            return [Target(name, url.rstrip("/"), kind) for name, _, url in pairs]

        return parse(self.dashboard_targets, "service") + parse(self.dashboard_probes, "probe")
