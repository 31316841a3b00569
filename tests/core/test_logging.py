from __future__ import annotations

import json
import logging

from atlas_core.logging import JsonFormatter, Redactor


def _format(message: str, *args: object, secrets: tuple[str, ...] = (), **extra: object) -> dict[str, object]:
    record = logging.LogRecord("atlas.test", logging.INFO, __file__, 1, message, args, None)
    for key, value in extra.items():
        setattr(record, key, value)
    line = JsonFormatter("llm-proxy", Redactor(secrets)).format(record)
    parsed: dict[str, object] = json.loads(line)
    return parsed


def test_json_line_with_extra_fields() -> None:
    entry = _format("request done in %d ms", 12, request_id="abc")
    assert entry["msg"] == "request done in 12 ms"
    assert entry["service"] == "llm-proxy"
    assert entry["level"] == "INFO"
    assert entry["request_id"] == "abc"


def test_keys_tokens_and_known_secrets_are_redacted() -> None:
    key = "sk-llm-" + "A1b2" * 10
    entry = _format("auth %s header %s", key, "Authorization: Bearer abc.def-ghi",
                    secrets=("my-service-token-value-1234",), note="token=my-service-token-value-1234")
    assert key not in str(entry)
    assert "abc.def-ghi" not in str(entry["msg"])
    assert "my-service-token-value-1234" not in json.dumps(entry)
    assert "[REDACTED]" in str(entry["msg"])


def test_password_assignments_and_redis_urls_are_redacted() -> None:
    redact = Redactor()
    assert "hunter2" not in redact("password=hunter2 api_key: 'xyz123'")
    assert "xyz123" not in redact("password=hunter2 api_key: 'xyz123'")
    assert redact("redis://:s3cr3t@127.0.0.1:6380/0") == "redis://:[REDACTED]@127.0.0.1:6380/0"
    assert redact("postgresql://atlas:p@ss@db:5432/x") == "postgresql://atlas:[REDACTED]@db:5432/x"
    assert "pw123456" not in redact("JWT_SECRET_KEY=pw123456 Authorization: Basic dXNlcjpwYXNz")
    assert "dXNlcjpwYXNz" not in redact("Authorization: Basic dXNlcjpwYXNz")


def test_exceptions_are_redacted() -> None:
    try:
        raise RuntimeError("failed with key sk-llm-abcdefghijklmnopqrstuvwxyz")
    except RuntimeError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", None, sys.exc_info())
    line = JsonFormatter("svc", Redactor()).format(record)
    assert "sk-llm-abcdefghijklmnopqrstuvwxyz" not in line
    assert "RuntimeError" in line


def test_secrets_nested_in_extra_structures_are_redacted() -> None:
    entry = _format("headers", secrets=("configured-secret-value",),
                    headers={"authorization": "Bearer abc.def", "x": ["configured-secret-value"]})
    assert "abc.def" not in json.dumps(entry)
    assert "configured-secret-value" not in json.dumps(entry)
