"""GET /v1/models and /v1/models/{id}: every catalogue model, with its state."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from gemma_service.api.state import StateDep
from gemma_service.chat.router import ChatRouter
from gemma_service.chat.service import ChatService
from gemma_service.models.pool import ModelPool, ModelStatus

router = APIRouter(tags=["openai"])


def model_card(status: ModelStatus, chat: ChatService | None) -> dict[str, Any]:
    """OpenAI's model object, with the model's state; while it is loaded, ``meta`` adds its
    size and its chat format (family, template source, tools, thinking)."""
    info = chat.model_info if chat is not None else None
    card: dict[str, Any] = {
        "id": info.model_id if info is not None else status.id,
        "object": "model",
        "created": info.created if info is not None else 0,
        "owned_by": "gemma-service",
        "state": status.state,
        "aliases": list(status.aliases),
        "pinned": status.pinned,
        "device": status.device,
        "size_bytes": status.size_bytes,
        "running": status.in_use,
    }
    if status.error:
        card["error"] = status.error
    if chat is not None and info is not None:
        card["created"] = info.created
        # What the model reads: "text", plus "image" / "audio" with a projector (mmproj).
        card["modalities"] = list(info.modalities)
        card["meta"] = {
            "n_ctx": info.n_ctx,
            "n_ctx_train": info.n_ctx_train,
            "n_vocab": info.n_vocab,
            "n_params": info.n_params,
            "size_bytes": info.size_bytes,
            "load_s": status.load_s,
            "architecture": info.architecture or None,
            **chat.chat_format.describe(),
        }
    return card


def model_cards(
    pool: ModelPool, chat: ChatRouter | None, model_id: str | None = None
) -> list[dict[str, Any]]:
    return [
        model_card(s, chat.loaded_service(s.id) if chat is not None else None)
        for s in pool.status(model_id)
    ]


@router.get("/v1/models")
async def list_models(state: StateDep) -> dict[str, Any]:
    return {"object": "list", "data": model_cards(state.models, state.chat)}


@router.get("/v1/models/{model_id:path}")
async def get_model(model_id: str, state: StateDep) -> dict[str, Any]:
    catalogue = state.models.catalogue
    entry = catalogue.find(model_id)
    if entry is not None:
        return model_cards(state.models, state.chat, entry.id)[0]
    # One model is also known by the id its engine reports (the single-engine app).
    cards = model_cards(state.models, state.chat) if len(catalogue.ids) == 1 else []
    if cards and cards[0]["id"] == model_id:
        return cards[0]
    raise catalogue.not_found(model_id, [c["id"] for c in cards] or None)
