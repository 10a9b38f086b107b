"""One log line and one metrics sample per HTTP request, under a request id.

The id comes from the client's ``X-Request-Id`` when it is a plain token (anything else is
replaced, so it cannot forge log lines) and is returned in the response's ``X-Request-Id``.
Client-controlled text is escaped; headers, keys and bodies are never logged.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Sequence

from starlette.routing import BaseRoute, Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gemma_service.api.metrics import ServiceMetrics
from gemma_service.api.protocols import protocol_of
from gemma_service.api.security.principal import PRINCIPAL_SCOPE_KEY, PUBLIC_PATHS, Principal
from gemma_service.logs import request_fields_var, request_id_var

log = logging.getLogger("gemma_service.requests")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# nginx's code for a request whose client went away before the answer; not a server error.
CLIENT_CLOSED_REQUEST = 499
# Probes and scrapes arrive every few seconds; their lines are debug-level.
_QUIET_PATHS = PUBLIC_PATHS | {"/metrics"}


def printable(text: str, limit: int = 200) -> str:
    """Client text made safe for a log line: non-printables escaped, length capped."""
    escaped = text.encode("unicode_escape").decode("ascii")
    return escaped if len(escaped) <= limit else escaped[:limit] + "..."


def request_id_for(scope: Scope) -> str:
    for key, value in scope["headers"]:
        if key == b"x-request-id":
            candidate = str(value.decode("latin-1"))
            if _REQUEST_ID.match(candidate):
                return candidate
    return uuid.uuid4().hex


def flat_routes(routes: Sequence[BaseRoute]) -> list[BaseRoute]:
    """Every route of the app, with included routers unfolded (FastAPI ≥ 0.160 nests them)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: the app's route list is already flat
        return list(routes)
    return [context.original_route for context in iter_route_contexts(routes)]


def route_template(routes: Sequence[BaseRoute], scope: Scope) -> str:
    """The matched route's path template (low-cardinality label), or 'unmatched'."""
    route = scope.get("route")
    if route is None:  # refused before routing (401, 413, 503): match the path ourselves
        partial = None
        for candidate in routes:
            match, _ = candidate.matches(scope)
            if match == Match.FULL:
                route = candidate
                break
            if match == Match.PARTIAL and partial is None:
                partial = candidate
        route = route or partial
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class RequestLogMiddleware:
    """Outermost middleware: sees every response, including refusals by the inner ones."""

    def __init__(self, app: ASGIApp, *, router: Router, metrics: ServiceMetrics) -> None:
        self.app = app
        self.router = router
        self.metrics = metrics
        self._routes: list[BaseRoute] | None = None  # unfolded on first use, after start-up

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_for(scope)
        token = request_id_var.set(request_id)
        noted: dict[str, object] = {}
        fields_token = request_fields_var.set(noted)
        started = time.perf_counter()
        status: int | None = None  # until the response starts
        sent = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except asyncio.CancelledError:
            if status is None:
                status = CLIENT_CLOSED_REQUEST
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # this task is being cancelled (shutdown): let it end
            # A route saw its client leave and gave up (streaming.unless_disconnected): there
            # is nobody to answer, and it is not a server error worth a traceback.
        finally:
            # No response and no cancellation: the app raised, and uvicorn answers 500.
            answered = 500 if status is None else status
            elapsed = time.perf_counter() - started
            self._record(scope, request_id, answered, sent, elapsed, noted)
            request_fields_var.reset(fields_token)
            request_id_var.reset(token)

    def _record(
        self,
        scope: Scope,
        request_id: str,
        status: int,
        sent: int,
        elapsed_s: float,
        noted: dict[str, object],
    ) -> None:
        if self._routes is None:
            self._routes = flat_routes(self.router.routes)
        route = route_template(self._routes, scope)
        method = scope["method"]
        protocol = protocol_of(scope["path"])
        self.metrics.requests.labels(protocol, route, method, str(status)).inc()
        self.metrics.request_seconds.labels(protocol, route).observe(elapsed_s)
        path = printable(scope["path"])
        principal = scope.get(PRINCIPAL_SCOPE_KEY)
        caller = principal.id if isinstance(principal, Principal) else None
        client = scope.get("client")
        fields = {
            "request_id": request_id,
            "method": method,
            "path": path,
            "route": route,
            "protocol": protocol,
            "status": status,
            "duration_ms": round(elapsed_s * 1000, 1),
            "bytes_sent": sent,
            "caller": caller,
            "client": client[0] if client else None,
            "user_agent": printable(_user_agent(scope), 120),
            **noted,  # what the layers added (the model that answered)
        }
        level = logging.DEBUG if scope["path"] in _QUIET_PATHS and status < 500 else logging.INFO
        log.log(
            level,
            "%s %s %d %.1fms id=%s caller=%s%s",
            method,
            path,
            status,
            elapsed_s * 1000,
            request_id,
            caller or "-",
            f" model={noted['model']}" if "model" in noted else "",
            extra={"fields": fields},
        )


def _user_agent(scope: Scope) -> str:
    for key, value in scope["headers"]:
        if key == b"user-agent":
            return str(value.decode("latin-1"))
    return ""
