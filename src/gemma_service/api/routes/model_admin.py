"""POST /models/load and /models/unload: load a model now, or unload it (when its running
requests have finished; a running stream is never cut). Admins only on a server with auth."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from gemma_service.api.routes.models import model_cards
from gemma_service.api.security.principal import Principal
from gemma_service.api.state import CurrentPrincipal, StateDep
from gemma_service.errors import PermissionDeniedError, ServiceUnavailableError

router = APIRouter(tags=["models"])


class ModelActionRequest(BaseModel):
    """Names the model to load or unload (its id or an alias)."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=512)


@router.post("/models/load")
async def load_model(
    body: ModelActionRequest, state: StateDep, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Load the model (waits up to GEMMA_MODEL_LOAD_WAIT_S); its card once loaded."""
    require_model_admin(principal)
    _refuse_while_draining(state.draining)
    status = await state.models.load(body.model)
    return model_cards(state.models, state.chat, status.id)[0]


@router.post("/models/unload")
async def unload_model(
    body: ModelActionRequest, state: StateDep, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Unload the model now if it is idle, else as soon as its last request ends."""
    require_model_admin(principal)
    status = await state.models.unload(body.model)
    card = model_cards(state.models, state.chat, status.id)[0]
    card["unload_when_idle"] = status.state in ("loaded", "loading")
    return card


def require_model_admin(principal: Principal) -> None:
    """Loading and unloading touch every caller's models: an admin's job, unless the server
    has no auth at all (a loopback server with no keys: everyone is its operator)."""
    if principal.method != "none" and not principal.admin:
        raise PermissionDeniedError(
            "only an admin may load or unload models", param="model", code="not_admin"
        )


def _refuse_while_draining(draining: bool) -> None:
    if draining:
        raise ServiceUnavailableError("the server is shutting down", retry_after_s=10)
