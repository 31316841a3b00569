"""The proxy's OpenAPI document fuzzed with schemathesis (tests/security/fuzzing.py), through the fake model
servers and a real rag-api with the real sandbox: no 5xx, no hang, no stack trace on any route."""

from __future__ import annotations

import copy
from typing import Any

from tests.proxy.conftest import Stack
from tests.security.fuzzing import fuzz

# The models each route serves here: with random names every case would stop at 404.
MODELS = {"/v1/chat/completions": ["fake-chat", "atlas"], "/v1/completions": ["fake-chat"],
          "/v1/embeddings": ["fake-embed"], "/v1/solve": ["atlas"]}


def served(spec: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(spec)
    for path, names in MODELS.items():
        body = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        body["properties"]["model"] = {"type": "string", "enum": names}
    return spec


def test_the_proxy_survives_fuzzing(stack: Stack, rag_proxy: str) -> None:
    key = stack.key()["key"]
    ran = fuzz(served(stack.proxy_app().openapi()), rag_proxy, lambda method, path: {"Authorization": f"Bearer {key}"},
               examples=15)
    assert len(ran) == 19  # the OpenAI endpoints, solve, the task API and the project API (7)
    for operation in ("POST /v1/chat/completions", "POST /v1/embeddings", "POST /v1/solve", "GET /v1/tasks"):
        assert sum(n for status, n in ran[operation].items() if status < 300), operation  # reached the backends
