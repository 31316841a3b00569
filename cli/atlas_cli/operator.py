"""The settings an operator command (``atlas lens``, ``atlas router``) runs with: rag-api's, as atlas.conf and the
state directory give them, connecting to Redis as the command's own ACL user."""

from __future__ import annotations

from pathlib import Path

from atlas_cli.config import redis_password_key
from atlas_cli.runner import prepare
from atlas_core.settings import load_settings
from atlas_rag.settings import Settings as RagSettings


def rag_settings_as(redis_user: str, conf: Path | None, state_dir: Path) -> RagSettings:
    config = prepare({"ATLAS_STATE_DIR": str(state_dir)}, conf)
    env = config.env_for(RagSettings) | {"ATLAS_REDIS_USER": redis_user}
    password = config.values.get(redis_password_key(redis_user))
    if password:
        env["ATLAS_REDIS_PASSWORD"] = password
    return load_settings(RagSettings, environ=env, conf_file=None, read_conf_file=False)
