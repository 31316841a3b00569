"""Error responses in OpenAI's shape, for every service: a clear message, the right status, no stack trace."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from atlas_core.schemas import ErrorBody, ErrorResponse

RETRY_AFTER_S = 2
_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 409: "conflict_error", 413: "invalid_request_error",
          422: "invalid_request_error", 429: "rate_limit_error", 503: "service_unavailable"}


def error_response(
    status: int, message: str, *, param: str | None = None, code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    error_type = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    body = ErrorResponse(error=ErrorBody(message=message, type=error_type, param=param, code=code))
    if status == 503 and not any(k.lower() == "retry-after" for k in headers or {}):
        # A dependency is down: it comes back, so every 503 says when to try again.
        headers = {**(headers or {}), "Retry-After": str(RETRY_AFTER_S)}
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


class ApiError(Exception):
    """Raised by a route or a dependency for a client-facing error: ``install_error_handlers`` turns it into
    OpenAI's error shape with this status (so routes raise instead of building responses)."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers


class Retryable(Exception):
    """Work that failed for a reason outside it (a dependency down or overloaded): the same work may succeed
    later. The task-worker retries it without counting a delivery."""


class Unrecoverable(Exception):
    """Work that cannot succeed as given, however often it is tried (bad input, a language the sandbox lacks):
    the task-worker ends the task."""


def _field(loc: tuple[object, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, param=exc.param, code=exc.code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        field = _field(tuple(first.get("loc", ())))
        message = f"invalid value for '{field}': {first.get('msg', 'invalid')}"
        if first.get("type") == "json_invalid":
            message = "request body is not valid JSON"
        return error_response(400, message, param=field)
