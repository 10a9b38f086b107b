"""Graceful shutdown: on SIGTERM stop taking work, let in-flight requests finish, then exit.

The first SIGTERM (or SIGINT) starts a drain: readiness turns 503 at once and new requests get
503, while the listener stays open so a load balancer sees a clear answer. When the last
in-flight request ends, or after GEMMA_DRAIN_S, uvicorn shuts down as usual; the app's lifespan
teardown then stops the engine and releases the GPU lease. A second signal stops at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from types import FrameType

import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from gemma_service.api.error_handlers import error_response
from gemma_service.api.security.principal import is_public_path
from gemma_service.errors import ServiceUnavailableError

log = logging.getLogger(__name__)

# Answered while draining, and not counted as work to wait for.
_ALWAYS_ANSWERED = frozenset({"/metrics"})


class RequestDrain:
    """Counts in-flight requests; once draining, reports when they are done or time is up."""

    def __init__(self, drain_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.drain_s = drain_s
        self.inflight = 0
        self._clock = clock
        self._since: float | None = None
        self._on_begin: list[Callable[[], None]] = []

    @property
    def draining(self) -> bool:
        return self._since is not None

    def on_begin(self, callback: Callable[[], None]) -> None:
        self._on_begin.append(callback)

    def begin(self) -> None:
        if self._since is not None:
            return
        self._since = self._clock()
        for callback in self._on_begin:
            callback()

    def done(self) -> bool:
        if self._since is None:
            return False
        if self.inflight == 0:
            return True
        if self._clock() - self._since >= self.drain_s:
            log.warning("drain time is up with %d request(s) still in flight", self.inflight)
            return True
        return False


class DrainMiddleware:
    """While draining, new requests get 503; before, every request is counted in flight."""

    def __init__(self, app: ASGIApp, *, drain: RequestDrain) -> None:
        self.app = app
        self.drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or is_public_path(path) or path in _ALWAYS_ANSWERED:
            await self.app(scope, receive, send)
            return
        if self.drain.draining:
            exc = ServiceUnavailableError("the server is shutting down", retry_after_s=10)
            await error_response(exc, path)(scope, receive, send)
            return
        self.drain.inflight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.drain.inflight -= 1


def request_drain(app: FastAPI) -> RequestDrain:
    drain: RequestDrain = app.state.drain
    return drain


class DrainingServer(uvicorn.Server):
    """uvicorn, except that the first stop signal drains before shutting down."""

    def __init__(self, config: uvicorn.Config, drain: RequestDrain) -> None:
        super().__init__(config)
        self.drain = drain
        self._announced = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Not recorded in uvicorn's captured signals: it would re-raise SIGTERM after a clean
        # shutdown, and the process would end by the signal instead of exiting 0.
        if self.drain.draining:
            if self.should_exit:
                self.force_exit = True
            self.should_exit = True
            return
        self.drain.begin()

    async def on_tick(self, counter: int) -> bool:
        if await super().on_tick(counter):
            return True
        if self.drain.draining and not self._announced:
            # Logged here, not in the signal handler, which runs inside whatever request
            # happened to be executing and would carry its request id.
            self._announced = True
            log.info(
                "draining: %d request(s) in flight, up to %gs",
                self.drain.inflight,
                self.drain.drain_s,
            )
        return self.drain.done()
