"""Property-based API fuzzing with schemathesis: for every operation of a service's OpenAPI document, requests that
fit the schema (positive) and requests that break it (negative), sent to the running service over a real socket
with the credential that operation needs. Every answer must come within the timeout, never be a 5xx (a 503 with
Retry-After is a dependency down, which the fuzzed services are not), and never show a stack trace."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.result import Ok

Credentials = Callable[[str, str], dict[str, str]]  # (method, path) -> headers
TIMEOUT_S = 30.0
# The services' own stack traces name their packages and files (a program's traceback in the sandbox's answer is
# that program's output, from /sandbox/...: not a leak).
LEAKS = ("site-packages", "atlas_core", "atlas_portal", "atlas_proxy", "atlas_rag", "atlas_sandbox", "atlas_worker",
         "atlas_llama", "/.venv/", "sqlalchemy", "redis.exceptions")


def check(response: httpx.Response, where: str) -> None:
    assert response.status_code < 500 or (response.status_code == 503 and "retry-after" in response.headers), \
        f"{where}: {response.status_code} {response.text[:500]}"
    assert not any(leak in response.text for leak in LEAKS), f"{where} leaks internals: {response.text[:500]}"


def fuzz(spec: dict[str, Any], base_url: str, credentials: Credentials, *, examples: int = 25,
         skip: Callable[[str, str], bool] = lambda method, path: False) -> dict[str, Counter[int]]:
    """Fuzz every operation of ``spec``: the statuses each operation answered, by "METHOD /path" (so a test can
    see the cases reached the handlers rather than bouncing off authentication)."""
    schema = schemathesis.openapi.from_dict(spec)
    ran: dict[str, Counter[int]] = {}
    with httpx.Client(base_url=base_url, timeout=TIMEOUT_S) as client:
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), f"the document has an operation schemathesis cannot read: {result}"
            operation = result.ok()
            method, path = operation.method.upper(), operation.path
            if skip(method, path) or path in ("/livez", "/readyz", "/metrics"):
                continue
            ran[f"{method} {path}"] = sum((_fuzz(client, operation, mode, credentials, examples)
                                           for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)), Counter())
    return ran


def _fuzz(client: httpx.Client, operation: Any, mode: GenerationMode, credentials: Credentials,
          examples: int) -> Counter[int]:
    statuses: Counter[int] = Counter()
    where = f"{operation.method.upper()} {operation.path} ({mode.value})"

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        sent = case.as_transport_kwargs(base_url=str(client.base_url))
        headers = {k: v for k, v in (sent.get("headers") or {}).items()
                   if k.lower() not in ("authorization", "connection")}
        body = {"json": sent["json"]} if "json" in sent else {"content": sent["data"]} if sent.get("data") else {}
        response = client.request(sent["method"], sent["url"], params=sent.get("params"),
                                  headers=headers | credentials(operation.method.upper(), operation.path), **body)
        check(response, where)
        statuses[response.status_code] += 1

    try:
        run()
    except Unsatisfiable:  # an operation without inputs has nothing to break
        assert mode == GenerationMode.NEGATIVE, f"{where}: no valid request could be made"
    return statuses
