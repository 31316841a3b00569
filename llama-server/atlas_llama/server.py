"""llama-server A for local installs: llama-cpp-python's OpenAI-compatible server, plus ``/health``.

``python -m atlas_llama.server CONFIG.json`` serves the models of a llama_cpp.server config file. It adds the
``/health`` endpoint native llama.cpp servers have: llama-cpp-python serialises every model endpoint
(``/v1/models`` included) behind one lock, so a readiness check there fails whenever a long completion runs.
The config file (mode 0600, written by ``atlas up``) carries the API key, which argv would expose to ``ps``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from llama_cpp.server.app import create_app
from llama_cpp.server.settings import ConfigFileSettings, ServerSettings


def build_app(config: ConfigFileSettings) -> FastAPI:
    app: FastAPI = create_app(server_settings=ServerSettings.model_validate(config),
                              model_settings=config.models)

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok"}  # answered only once the model has loaded (it loads before serving)

    return app


def main() -> None:
    if len(sys.argv) != 2:
        print("usage: python -m atlas_llama.server CONFIG.json", file=sys.stderr)
        raise SystemExit(2)
    config = ConfigFileSettings.model_validate_json(Path(sys.argv[1]).read_text(encoding="utf-8"))
    uvicorn.run(build_app(config), host=config.host, port=config.port, log_level="warning", server_header=False)


if __name__ == "__main__":
    main()
