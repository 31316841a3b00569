"""How atlas-bench reaches a platform ``atlas up`` runs: its URLs (``run/plan.json``) and credentials (the
admin's key in ``admin.json``, the sandbox signing key and the model key in ``secrets.env``)."""

from __future__ import annotations

import json
import os
import urllib.parse
from pathlib import Path


def is_local(url: str) -> bool:
    return urllib.parse.urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1")


def shares_host(url: str, sandbox_url: str) -> bool:
    """A sandbox on the host of a remote platform: scoring there would hand the platform its hidden tests."""
    host = urllib.parse.urlsplit(url).hostname
    return not is_local(url) and host is not None and host == urllib.parse.urlsplit(sandbox_url).hostname


def own_sandbox(url: str, sandbox_url: str | None, signing_key: str | None) -> bool:
    """Whether atlas-bench starts a sandbox of its own on this machine (atlas_bench.local_sandbox): when none is
    named and the proxy is remote (a cluster's: its sandbox is not this machine's, nor should it see the hidden
    tests), or no signing key for ``atlas up``'s sandbox is at hand."""
    return sandbox_url is None and (not is_local(url) or not signing_key)


def secrets_env(state_dir: Path) -> dict[str, str]:
    path = state_dir / "secrets.env"
    if not path.is_file():
        return {}
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def local_urls(state_dir: Path) -> dict[str, str]:
    """The proxy's, the sandbox's and the embedding server's URLs as ``atlas up`` started them (its
    ``run/plan.json``), so a platform on non-default ports needs no ``--url``; without a running ``atlas up``,
    its default ports."""
    urls = {"llm-proxy": "http://127.0.0.1:8000", "sandbox": "http://127.0.0.1:8020",
            "embedding-server": "http://127.0.0.1:8081"}
    try:
        services = json.loads((state_dir / "run" / "plan.json").read_text())["services"]
        urls |= {s["name"]: s["url"] for s in services if s.get("name") in urls and s.get("url")}
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return urls


def platform_keys(state_dir: Path, api_key: str | None = None) -> tuple[str | None, str | None]:
    """The API key (given, ATLAS_API_KEY, else the admin's that atlas up kept) and the sandbox signing key."""
    key = api_key or os.environ.get("ATLAS_API_KEY")
    if not key and (state_dir / "admin.json").is_file():
        key = json.loads((state_dir / "admin.json").read_text()).get("key")
    signing = os.environ.get("ATLAS_SANDBOX_SIGNING_KEY") or secrets_env(state_dir).get("ATLAS_SANDBOX_SIGNING_KEY")
    return key, signing


def model_key(state_dir: Path) -> str | None:
    """The key llama-server A and B require (the embedding server's, for the decontamination check)."""
    return os.environ.get("ATLAS_LLAMA_API_KEY") or secrets_env(state_dir).get("ATLAS_LLAMA_API_KEY")
