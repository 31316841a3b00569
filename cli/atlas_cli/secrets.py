"""Secrets generated on first ``atlas up``: kept in ``STATE_DIR/secrets.env`` (mode 0600), never printed."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from atlas_core.settings import read_conf

SECRETS_FILE = "secrets.env"


def ensure_state_dir(state_dir: Path) -> None:
    """Create the state directory readable by its owner only (it holds secrets and the database)."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(state_dir, 0o700)


def ensure_secrets(state_dir: Path, keys: Iterable[str]) -> dict[str, str]:
    """Return a value for every key, generating and appending the missing ones.

    The file is created with mode 0600 before anything is written, so a secret never exists world-readable.
    """
    path = state_dir / SECRETS_FILE
    existing = read_conf(path) if path.exists() else {}
    missing = [k for k in keys if k not in existing]
    if missing:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as handle:
            for key in missing:
                existing[key] = secrets.token_urlsafe(32)
                handle.write(f"{key}={existing[key]}\n")
    os.chmod(path, 0o600)
    return existing
