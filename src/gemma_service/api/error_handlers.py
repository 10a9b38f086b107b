"""The one place where exceptions become HTTP responses with OpenAI-shaped error bodies."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

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


def error_response(exc: ServiceError) -> JSONResponse:
    return JSONResponse(exc.to_body(), status_code=exc.status_code, headers=exc.headers)


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
    async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(validation_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        cls = _HTTP_STATUS_ERRORS.get(exc.status_code)
        if cls is not None:
            return error_response(cls(str(exc.detail)))
        body = {
            "error": {
                "message": str(exc.detail),
                "type": "http_error",
                "param": None,
                "code": str(exc.status_code),
            }
        }
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        body = {
            "error": {
                "message": "internal server error",
                "type": "server_error",
                "param": None,
                "code": "internal_error",
            }
        }
        return JSONResponse(body, status_code=500)


def sse_error(exc: ServiceError) -> bytes:
    """An error inside an already-started SSE stream (OpenAI's shape: an event of its own)."""
    return sse_json(exc.to_body())
