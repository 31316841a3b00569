"""Entry point shared by the services' ``__main__``: settings, logging, uvicorn."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

import uvicorn
from fastapi import FastAPI

from atlas_core.logging import configure_logging
from atlas_core.settings import HttpSettings, SettingsError, load_settings

S = TypeVar("S", bound=HttpSettings)


def run_service(service: str, settings_cls: type[S], create_app: Callable[[S], FastAPI], *,
                access_log: bool = True) -> None:
    """Validate settings (one clear line and exit 2 on a bad key), configure logging, serve."""
    try:
        settings = load_settings(settings_cls)
        app = create_app(settings)
    except SettingsError as exc:
        print(f"{service}: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(service, settings.log_level, settings.secret_values())
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None,
                server_header=False, proxy_headers=False, access_log=access_log)
