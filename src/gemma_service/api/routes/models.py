"""GET /v1/models and /v1/models/{id}."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from gemma_service.api.state import ChatDep
from gemma_service.chat.service import ChatService
from gemma_service.errors import NotFoundError

router = APIRouter(tags=["openai"])


def model_card(chat: ChatService) -> dict[str, Any]:
    """A model as /v1/models lists it; ``meta`` adds its size and its chat format (family,
    template source, tools, thinking)."""
    info = chat.model_info
    return {
        "id": info.model_id,
        "object": "model",
        "created": info.created,
        "owned_by": "gemma-service",
        # What the model reads: "text", plus "image" / "audio" with a projector (mmproj).
        "modalities": list(info.modalities),
        "meta": {
            "n_ctx": info.n_ctx,
            "n_ctx_train": info.n_ctx_train,
            "n_vocab": info.n_vocab,
            "n_params": info.n_params,
            "size_bytes": info.size_bytes,
            "architecture": info.architecture or None,
            **chat.chat_format.describe(),
        },
    }


@router.get("/v1/models")
async def list_models(chat: ChatDep) -> dict[str, Any]:
    return {"object": "list", "data": [model_card(chat)]}


@router.get("/v1/models/{model_id:path}")
async def get_model(model_id: str, chat: ChatDep) -> dict[str, Any]:
    info = chat.model_info
    if model_id != info.model_id:
        raise NotFoundError(
            f"The model '{model_id}' does not exist", param="model", code="model_not_found"
        )
    return model_card(chat)
