"""Secrets generated on first ``atlas up``: kept in ``STATE_DIR/secrets.env`` (mode 0600), never printed."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from pathlib import Path

from atlas_cli.plan import write_private
from atlas_core.settings import read_conf

SECRETS_FILE = "secrets.env"


def ensure_state_dir(state_dir: Path) -> None:
    """Create the state directory readable by its owner only (it holds secrets and the database). An existing
    directory keeps its mode: it may be a shared one the user chose, and every file in it is created 0600."""
    if not state_dir.exists():
        state_dir.mkdir(mode=0o700, parents=True)


def ensure_secrets(state_dir: Path, keys: Iterable[str]) -> dict[str, str]:
    """Return a value for every key, generating and appending the missing ones.

    The file is rewritten whole, atomically, with mode 0600 from its first byte.
    """
    path = state_dir / SECRETS_FILE
    existing = read_conf(path) if path.exists() else {}
    missing = [k for k in keys if k not in existing]
    if missing or not path.exists():
        existing |= {key: secrets.token_urlsafe(32) for key in missing}
        write_private(path, "".join(f"{key}={value}\n" for key, value in existing.items()))
    return existing
