"""The app's middleware stack, in one place: request logs, CORS, the drain gate, auth and rate
limits, request-size limits (outermost first), and /metrics."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from gemma_service.api.drain import DrainMiddleware, RequestDrain
from gemma_service.api.metrics import ServiceMetrics
from gemma_service.api.metrics import router as metrics_router
from gemma_service.api.request_log import RequestLogMiddleware
from gemma_service.api.security.authenticator import Authenticator
from gemma_service.api.security.middleware import AuthMiddleware, RequestLimitsMiddleware
from gemma_service.api.security.rate_limit import RateLimiter
from gemma_service.api.security.request_limits import RequestLimits
from gemma_service.config import ServiceSettings

CORS_HEADERS = ["Authorization", "Content-Type", "X-Api-Key", "X-Request-Id", "X-Gemma-Owner"]


def cors_origins(settings: ServiceSettings) -> list[str]:
    return [o.strip() for o in (settings.cors_origins or "").split(",") if o.strip()]


def install_middleware(
    app: FastAPI, settings: ServiceSettings, *, metrics: ServiceMetrics, limiter: RateLimiter
) -> None:
    """Every route but the probes needs credentials; every request is limited, logged, counted.

    Raises ``SecurityConfigError`` when the auth settings cannot be served.
    """
    authenticator = Authenticator.from_settings(settings)
    drain = RequestDrain(settings.drain_s)
    drain.on_begin(lambda: _mark_draining(app))
    app.state.metrics = metrics
    app.state.drain = drain
    metrics.watch(lambda: getattr(app.state, "service", None))
    app.include_router(metrics_router)
    # Starlette runs the last-added middleware first: this list is innermost first.
    app.add_middleware(RequestLimitsMiddleware, limits=RequestLimits.from_settings(settings))
    app.add_middleware(AuthMiddleware, authenticator=authenticator, limiter=limiter)
    app.add_middleware(DrainMiddleware, drain=drain)
    origins = cors_origins(settings)
    if origins:  # outside auth, so that preflight requests are answered without credentials
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=CORS_HEADERS,
            expose_headers=["X-Request-Id", "Retry-After"],
            max_age=600,
        )
    app.add_middleware(RequestLogMiddleware, router=app.router, metrics=metrics)


def _mark_draining(app: FastAPI) -> None:
    service = getattr(app.state, "service", None)
    if service is not None:
        service.draining = True  # readiness turns 503 at once
