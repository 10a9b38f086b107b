"""ASGI middleware that guards every route but the probes: credentials, rate, size.

Pure ASGI rather than ``BaseHTTPMiddleware``: streamed responses pass through untouched, and a
refusal is answered before the body is read.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gemma_service.api.error_handlers import error_response
from gemma_service.api.security.authenticator import Authenticator, Credentials, bearer_token
from gemma_service.api.security.principal import PRINCIPAL_SCOPE_KEY, is_public_path
from gemma_service.api.security.rate_limit import RateLimiter
from gemma_service.api.security.request_limits import RequestLimits, check_unicode
from gemma_service.errors import AuthenticationError, ServiceError

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
WS_POLICY_VIOLATION = 1008


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _refuse(exc: ServiceError, scope: Scope, receive: Receive, send: Send) -> None:
    response = error_response(exc, scope["path"])
    if isinstance(exc, AuthenticationError):
        response.headers["WWW-Authenticate"] = "Bearer"
    await response(scope, receive, send)


class AuthMiddleware:
    """401 without valid credentials, 429 over the caller's rate; the caller goes in the scope."""

    def __init__(self, app: ASGIApp, *, authenticator: Authenticator, limiter: RateLimiter) -> None:
        self.app = app
        self.authenticator = authenticator
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or is_public_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        credentials = Credentials(
            bearer_token(_header(scope, b"authorization"), _header(scope, b"x-api-key")),
            client[0] if client else None,
        )
        try:
            principal = self.authenticator.authenticate(credentials)
            self.limiter.admit(principal.id)
        except ServiceError as exc:
            if scope["type"] == "websocket":  # closing before accept: the handshake gets 403
                await send({"type": "websocket.close", "code": WS_POLICY_VIOLATION})
                return
            await _refuse(exc, scope, receive, send)
            return
        scope[PRINCIPAL_SCOPE_KEY] = principal
        await self.app(scope, receive, send)


class RequestLimitsMiddleware:
    """431 for oversized headers, 413 for oversized bodies, 400 for too many or too long
    messages. The body is read once (bounded) and replayed to the app."""

    def __init__(self, app: ASGIApp, *, limits: RequestLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            self.limits.check_head(scope["path"], scope["query_string"], scope["headers"])
            declared = _header(scope, b"content-length")
            if declared and declared.isdigit() and int(declared) > self.limits.max_body_bytes:
                raise self.limits.body_too_large(int(declared))
            if scope["method"] not in _BODY_METHODS:
                await self.app(scope, receive, send)
                return
            body = await self._read_body(receive)
            if body is None:
                return  # the client went away
            self._check_json(scope, body)
        except ServiceError as exc:
            await _refuse(exc, scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read_body(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limits.max_body_bytes:
                raise self.limits.body_too_large(size)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _check_json(self, scope: Scope, body: bytes) -> None:
        content_type = _header(scope, b"content-type") or "application/json"
        if not body or "json" not in content_type.lower():
            return
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):
            return  # the route answers malformed JSON with its own 400
        check_unicode(parsed)
        self.limits.check_body(parsed)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # afterwards: wait for the disconnect, as the app expects

    return replay
