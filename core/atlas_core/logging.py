"""JSON-lines logging with secret redaction, configured once per process in ``__main__``.

Keys, bearer tokens and every secret value of the process's settings are replaced by ``[REDACTED]`` in the
message, the arguments and tracebacks, so a careless ``log.info("%s", headers)`` cannot leak a credential.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable

REDACTED = "[REDACTED]"
_PATTERNS = [
    (re.compile(r"sk-llm-[A-Za-z0-9_\-]+"), REDACTED),
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9_\-.=:+/]+"), r"\1" + REDACTED),
    (re.compile(r"(?i)(basic\s+)[A-Za-z0-9+/=]{8,}"), r"\1" + REDACTED),
    (re.compile(r"(?i)([\w-]*(?:api[_-]?key|token|passw(?:or)?d|secret|credential)[\w-]*[\"']?\s*[:=]\s*[\"']?)"
                r"[^\s\"',}]+"), r"\1" + REDACTED),
    # user:password@ in any URL (redis://, postgresql://, https://): up to the last @ of the authority
    (re.compile(r"(?i)([a-z][a-z0-9+.\-]*://[^:/@\s]*:)[^\s/]*@"), r"\1" + REDACTED + "@"),
]
# Attributes every LogRecord has; anything else was passed with ``extra=`` and goes into the JSON object.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class Redactor:
    """Replaces known secret values and secret-shaped strings."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = sorted({s for s in secrets if len(s) >= 8}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, service, logger, msg, extra fields, exc."""

    def __init__(self, service: str, redact: Redactor) -> None:
        super().__init__()
        self._service = service
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "service": self._service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        # Redact the serialised line, so secrets nested in extra dicts and lists are caught too.
        return self._redact(json.dumps(entry, default=str))


def configure_logging(service: str, level: str = "INFO", secrets: Iterable[str] = ()) -> None:
    """Send every logger (uvicorn's included) to stderr as redacted JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service, Redactor(secrets)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # httpx logs every request URL at INFO; keep that out unless debugging.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
