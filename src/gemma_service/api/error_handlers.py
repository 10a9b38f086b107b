"""The one place where exceptions become HTTP error responses, in the protocol of the path.

OpenAI's shape by default (``{"error": {"message", "type", "param", "code"}}``); the Anthropic
and Ollama routes get theirs (``api/protocols.py``), validation errors included.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gemma_service.api.protocols import error_body, protocol_of
from gemma_service.errors import (
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    ServiceError,
)
from gemma_service.sse import sse_json

log = logging.getLogger(__name__)

_HTTP_STATUS_ERRORS: dict[int, type[ServiceError]] = {
    400: InvalidRequestError,
    404: NotFoundError,
    413: PayloadTooLargeError,
}


class HttpStatusError(ServiceError):
    """Any other status the framework answers with (405 method not allowed, ...)."""

    error_type = "http_error"

    def __init__(self, status: int, message: str, headers: dict[str, str] | None) -> None:
        super().__init__(message, code=str(status), headers=headers)
        self.status_code = status


def error_response(exc: ServiceError, path: str) -> JSONResponse:
    """``exc`` as a response in the error shape of the protocol ``path`` belongs to."""
    body = error_body(exc, protocol_of(path))
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


def validation_error(exc: RequestValidationError) -> InvalidRequestError:
    """The first validation problem, as a 400 naming the field."""
    errors: list[Any] = list(exc.errors())
    if not errors:
        return InvalidRequestError("invalid request")
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
    param = ".".join(loc) or None
    if first.get("type") == "json_invalid":
        return InvalidRequestError("the request body is not valid JSON", code="invalid_json")
    if first.get("type") == "missing" and not loc:
        return InvalidRequestError("the request body is missing", code="invalid_json")
    msg = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    where = f"'{param}': " if param else ""
    return InvalidRequestError(f"{where}{msg}", param=param, code="invalid_value")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return error_response(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(validation_error(exc), request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        cls = _HTTP_STATUS_ERRORS.get(exc.status_code)
        error = (
            cls(str(exc.detail))
            if cls is not None
            else HttpStatusError(exc.status_code, str(exc.detail), dict(exc.headers or {}))
        )
        return error_response(error, request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        error = ServiceError("internal server error", code="internal_error")
        return error_response(error, request.url.path)


def sse_error(exc: ServiceError) -> bytes:
    """An error inside an already-started SSE stream (OpenAI's shape: an event of its own)."""
    return sse_json(exc.to_body())
