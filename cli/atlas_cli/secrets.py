"""Secrets generated on first ``atlas up``: kept in ``STATE_DIR/secrets.env`` (mode 0600), never printed."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

from atlas_cli.plan import write_private
from atlas_core.settings import read_conf

SECRETS_FILE = "secrets.env"


def ensure_state_dir(state_dir: Path) -> None:
    """Create the state directory readable by its owner only (it holds secrets and the database). An existing
    directory keeps its mode: it may be a shared one the user chose, and every file in it is created 0600."""
    if not state_dir.exists():
        state_dir.mkdir(mode=0o700, parents=True)


def fill(existing: Mapping[str, str], keys: Iterable[str]) -> dict[str, str]:
    """``existing`` with a new secret (32 random bytes, url-safe) for every key it lacks: the one rule for
    ``atlas up``'s secrets.env and the Kubernetes Secrets (``atlas k8s secrets``)."""
    return {**existing, **{key: secrets.token_urlsafe(32) for key in keys if not existing.get(key)}}


def ensure_secrets(state_dir: Path, keys: Iterable[str]) -> dict[str, str]:
    """Return a value for every key, generating and appending the missing ones.

    The file is rewritten whole, atomically, with mode 0600 from its first byte.
    """
    path = state_dir / SECRETS_FILE
    existing = read_conf(path) if path.exists() else {}
    filled = fill(existing, keys)
    if filled != existing or not path.exists():
        write_private(path, "".join(f"{key}={value}\n" for key, value in filled.items()))
    return filled
