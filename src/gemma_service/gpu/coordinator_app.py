"""The GPU lease coordinator's HTTP service: settings, app factory and ``run_coordinator``.

Run it as ``gemma-service coordinator`` or ``python -m gemma_service.gpu.coordinator_app``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import uvicorn
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from gemma_service.errors import InvalidRequestError, ServiceError
from gemma_service.gpu.coordinator_metrics import CoordinatorMetrics
from gemma_service.gpu.coordinator_service import LeaseCoordinator, PreemptNotice
from gemma_service.gpu.coordinator_state import Lease
from gemma_service.gpu.token_store import TokenStore
from gemma_service.logs import configure_logging
from gemma_service.settings_fields import default_data_dir, field_env, field_flag, setting
from gemma_service.sse import sse_comment, sse_json

logger = logging.getLogger(__name__)

HOLDER_PATTERN = r"^[A-Za-z0-9_.:@/-]{1,128}$"


class CoordinatorSettings(BaseSettings):
    """Everything `gemma-service coordinator` can be told, from env vars or flags."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", populate_by_name=True)

    host: str = setting("127.0.0.1", "GPU_COORDINATOR_HOST", "bind address", flag="--host")
    port: int = setting(8002, "GPU_COORDINATOR_PORT", "bind port", flag="--port", ge=0, le=65535)
    state_dir: Path = setting(
        default_data_dir() / "coordinator",
        "GPU_COORDINATOR_STATE_DIR",
        "where the last fencing token is kept across restarts",
        flag="--state-dir",
    )
    default_ttl_s: float = setting(
        10.0,
        "GPU_COORDINATOR_DEFAULT_TTL_S",
        "lease TTL (s) when a request sets none",
        flag="--default-ttl",
        gt=0,
    )
    max_ttl_s: float = setting(
        120.0,
        "GPU_COORDINATOR_MAX_TTL_S",
        "longest lease TTL (s) a request may ask for",
        flag="--max-ttl",
        gt=0,
    )
    max_wait_s: float = setting(
        600.0,
        "GPU_COORDINATOR_MAX_WAIT_S",
        "longest wait_s (s) a request may ask for",
        flag="--max-wait",
        ge=0,
    )
    keepalive_s: float = setting(
        5.0,
        "GPU_COORDINATOR_KEEPALIVE_S",
        "seconds between keep-alive comments on /events",
        flag="--keepalive",
        gt=0,
    )
    log_level: Literal["debug", "info", "warning", "error"] = setting(
        "info", "GPU_COORDINATOR_LOG_LEVEL", "log level", flag="--log-level"
    )


class LeaseRequest(BaseModel):
    """Body of ``POST /leases``."""

    model_config = ConfigDict(extra="forbid")
    holder: str = Field(pattern=HOLDER_PATTERN)
    priority: int = Field(0, ge=-1000, le=1000)
    ttl_s: float | None = Field(None, gt=0)
    wait_s: float = Field(0.0, ge=0)


class TokenBody(BaseModel):
    """Body of ``POST /leases/{id}/renew``."""

    model_config = ConfigDict(extra="forbid")
    token: int


class FencingCheck(BaseModel):
    """Body of ``POST /leases/validate``."""

    model_config = ConfigDict(extra="forbid")
    lease_id: str
    token: int


def _get_coordinator(request: Request) -> LeaseCoordinator:
    coordinator: LeaseCoordinator = request.app.state.coordinator
    return coordinator


CoordinatorDep = Annotated[LeaseCoordinator, Depends(_get_coordinator)]


def _lease_body(lease: Lease, now: float) -> dict[str, object]:
    expires_in_s = max(0.0, lease.expires_at - now)
    return {
        "lease_id": lease.lease_id,
        "token": lease.token,
        "holder": lease.holder,
        "priority": lease.priority,
        "ttl_s": lease.ttl_s,
        "expires_in_s": round(expires_in_s, 4),
        "expires_at": round(time.time() + expires_in_s, 4),
        "preempted": lease.preempted_at is not None,
    }


def _error_response(error: ServiceError) -> JSONResponse:
    return JSONResponse(error.to_body(), status_code=error.status_code, headers=error.headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(_: Request, exc: ServiceError) -> JSONResponse:
        return _error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(part) for part in first.get("loc", ()) if part not in ("body", "query")]
        message = f"{'.'.join(loc) or 'request'}: {first.get('msg', 'invalid request')}"
        return _error_response(InvalidRequestError(message, param=".".join(loc) or None))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = ServiceError(str(exc.detail), code=f"http_{exc.status_code}")
        error.status_code = exc.status_code
        error.error_type = "invalid_request_error" if exc.status_code < 500 else "server_error"
        return _error_response(error)


async def _event_stream(
    coordinator: LeaseCoordinator, holder: str, keepalive_s: float
) -> AsyncIterator[bytes]:
    async with coordinator.subscribe(holder) as notices:
        yield sse_json({"holder": holder}, event="ready")
        while True:
            try:
                notice: PreemptNotice = await asyncio.wait_for(notices.get(), keepalive_s)
            except TimeoutError:
                # Comments keep proxies from timing the stream out and let clients detect loss.
                yield sse_comment("keep-alive")
                continue
            yield sse_json(
                {
                    "lease_id": notice.lease_id,
                    "token": notice.token,
                    "holder": notice.holder,
                    "requested_by": notice.requested_by,
                    "requested_priority": notice.requested_priority,
                    "yield_within_s": round(notice.yield_within_s, 4),
                },
                event="preempt",
            )


def _add_lease_routes(app: FastAPI, settings: CoordinatorSettings) -> None:
    @app.post("/leases")
    async def acquire(body: LeaseRequest, coordinator: CoordinatorDep) -> dict[str, object]:
        ttl_s = body.ttl_s if body.ttl_s is not None else settings.default_ttl_s
        if ttl_s > settings.max_ttl_s:
            raise InvalidRequestError(f"ttl_s may be at most {settings.max_ttl_s:g}", param="ttl_s")
        if body.wait_s > settings.max_wait_s:
            raise InvalidRequestError(
                f"wait_s may be at most {settings.max_wait_s:g}", param="wait_s"
            )
        arrived_at = coordinator.table.now()
        lease = await coordinator.acquire(body.holder, body.priority, ttl_s, body.wait_s)
        now = coordinator.table.now()
        # Lets the client date the grant on its own clock: it came waited_s after the request.
        return {**_lease_body(lease, now), "waited_s": round(now - arrived_at, 4)}

    @app.post("/leases/validate")
    async def validate(body: FencingCheck, coordinator: CoordinatorDep) -> dict[str, object]:
        lease = coordinator.table.validate(body.lease_id, body.token)
        return {"valid": True, **_lease_body(lease, coordinator.table.now())}

    @app.post("/leases/{lease_id}/renew")
    async def renew(
        lease_id: str, body: TokenBody, coordinator: CoordinatorDep
    ) -> dict[str, object]:
        lease = coordinator.table.renew(lease_id, body.token)
        return _lease_body(lease, coordinator.table.now())

    @app.delete("/leases/{lease_id}")
    async def release(
        lease_id: str, token: Annotated[int, Query()], coordinator: CoordinatorDep
    ) -> dict[str, object]:
        lease = coordinator.table.release(lease_id, token)
        return {"released": True, "lease_id": lease.lease_id, "token": lease.token}

    @app.get("/leases")
    async def state(coordinator: CoordinatorDep) -> dict[str, object]:
        table = coordinator.table
        now = table.now()
        return {
            "holder": _lease_body(table.holder, now) if table.holder else None,
            "queue": [
                {
                    "holder": t.holder,
                    "priority": t.priority,
                    "waited_s": round(now - t.arrived_at, 4),
                }
                for t in table.queue
            ],
            "last_token": table.last_token,
            "grants_paused_for_s": round(max(0.0, table.grants_paused_until - now), 4),
        }


def _add_service_routes(app: FastAPI, settings: CoordinatorSettings) -> None:
    @app.get("/events")
    async def events(
        holder: Annotated[str, Query(pattern=HOLDER_PATTERN)], coordinator: CoordinatorDep
    ) -> StreamingResponse:
        return StreamingResponse(
            _event_stream(coordinator, holder, settings.keepalive_s),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.get("/metrics")
    async def metrics(coordinator: CoordinatorDep) -> Response:
        return Response(coordinator.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/healthz")
    async def healthz(request: Request, coordinator: CoordinatorDep) -> dict[str, object]:
        table = coordinator.table
        return {
            "status": "ok",
            "holder": table.holder.holder if table.holder else None,
            "queue_length": len(table.queue),
            "last_token": table.last_token,
            "uptime_s": round(time.monotonic() - request.app.state.started_at, 3),
        }


def create_coordinator_app(settings: CoordinatorSettings) -> FastAPI:
    """The coordinator app; its state file is read and its reaper started in the lifespan."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        coordinator = LeaseCoordinator(TokenStore(settings.state_dir), CoordinatorMetrics())
        app.state.coordinator = coordinator
        app.state.started_at = time.monotonic()
        reaper = asyncio.create_task(coordinator.run_reaper(), name="lease-reaper")
        logger.info("coordinator ready; last token %d", coordinator.table.last_token)
        try:
            yield
        finally:
            reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reaper

    app = FastAPI(title="gemma-service GPU coordinator", lifespan=lifespan)
    _install_error_handlers(app)
    _add_lease_routes(app, settings)
    _add_service_routes(app, settings)
    return app


def run_coordinator(settings: CoordinatorSettings) -> None:
    """Serve the coordinator until SIGINT/SIGTERM."""
    configure_logging(settings.log_level)
    config = uvicorn.Config(
        create_coordinator_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,  # keep the service's own log format (configure_logging)
        access_log=settings.log_level == "debug",
        # Open /events streams never end by themselves; do not let them hold up shutdown.
        timeout_graceful_shutdown=2,
    )
    uvicorn.Server(config).run()


def parse_coordinator_args(argv: Sequence[str] | None = None) -> CoordinatorSettings:
    """Settings from env vars, overridden by the flags declared on CoordinatorSettings."""
    parser = argparse.ArgumentParser(
        prog="python -m gemma_service.gpu.coordinator_app", description="GPU lease coordinator"
    )
    for name, info in CoordinatorSettings.model_fields.items():
        flag = field_flag(info)
        if flag:
            parser.add_argument(flag, dest=name, help=f"{info.description} [{field_env(info)}]")
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {k: v for k, v in vars(args).items() if v is not None}
    try:
        return CoordinatorSettings(**overrides)
    except ValidationError as exc:
        parser.error(str(exc))


if __name__ == "__main__":
    run_coordinator(parse_coordinator_args())
