"""Health: /livez (process alive), /readyz (can take work), /health and /healthz (details)."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from gemma_service import __version__
from gemma_service.api.state import ServiceState, StateDep
from gemma_service.llama import kernel_check

router = APIRouter(tags=["health"])


def service_status(state: ServiceState) -> str:
    if state.load_error:
        return "error"
    if state.draining:
        return "draining"
    if state.chat is None:
        return "loading"
    for _model, engine in state.models.loaded():
        h = engine.health()
        if h.state == "dead":
            return "error"
        # Work pending, no engine step for this long (GEMMA_WEDGED_AFTER_S): the engine is wedged.
        if h.last_step_age_s is not None and h.last_step_age_s > state.settings.wedged_after_s:
            return "wedged"
    return "ok"


def health_body(state: ServiceState) -> dict[str, Any]:
    h = state.engine.health()
    body: dict[str, Any] = {
        "status": service_status(state),
        "version": __version__,
        "model": None,
        "device": h.device,
        "gpu_layers": h.gpu_layers,
        "gpu_available": h.gpu_available,
        "running": h.running,
        "waiting": h.waiting,
        "uptime_s": round(time.time() - state.started_at, 1),
    }
    models = state.models.status()
    if state.chat is not None and models[0].state == "loaded":
        info = state.engine.model_info
        body["model"] = info.model_id
        body["n_ctx"] = info.n_ctx
        body["modalities"] = list(info.modalities)
        body["mmproj"] = info.mmproj_path
        default = state.chat.loaded_service(models[0].id)
        if default is not None:
            body["chat_format"] = default.chat_format.describe()
    elif state.chat is not None:
        body["model"] = models[0].id
    body["models"] = [
        {"id": m.id, "state": m.state, "device": m.device, "running": m.in_use}
        for m in models
        if m.state != "unloaded"
    ]
    if h.detail or state.load_error:
        body["detail"] = state.load_error or h.detail
    body.update(asdict(h.stats))
    if h.upstreams:
        body["upstreams"] = [
            {"url": u.url, "healthy": u.healthy, "in_flight": u.in_flight} for u in h.upstreams
        ]
    if state.residency is not None:
        body.update(state.residency.status())
    kernels = kernel_check.current()
    if kernels is not None:
        body["cpu_kernels"] = kernels.as_dict()
    return body


@router.get("/livez")
async def livez() -> dict[str, str]:
    return {"status": "alive"}


@router.get("/readyz")
async def readyz(state: StateDep) -> JSONResponse:
    status = service_status(state)
    code = 200 if status == "ok" else 503
    headers = {} if code == 200 else {"Retry-After": "5"}
    return JSONResponse(
        {"status": "ready" if code == 200 else status}, status_code=code, headers=headers
    )


@router.get("/health")
@router.get("/healthz")
async def healthz(state: StateDep) -> JSONResponse:
    body = health_body(state)
    code = 200 if body["status"] == "ok" else 503
    return JSONResponse(body, status_code=code)
