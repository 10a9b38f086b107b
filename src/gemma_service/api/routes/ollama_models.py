"""Ollama's model and embedding API: GET /api/tags, /api/ps, /api/version, POST /api/show,
/api/embed, /api/embeddings, and HEAD / (the "is it running" probe of Ollama clients).

Every catalogue model is listed under its id (``gemma-3-270m-q4_k_m``), and /api/ps lists the
loaded ones; ``name:latest`` names a model too, as Ollama names models. Embeddings come from
the memory's embedders: a model name that is not an embedder's gets the default one.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from gemma_service import __version__
from gemma_service.api.ollama_protocol import (
    OllamaEmbeddingsRequest,
    OllamaEmbedRequest,
    OllamaShowRequest,
)
from gemma_service.api.ollama_writers import created_at
from gemma_service.api.routes.embeddings import MAX_INPUTS, shorten
from gemma_service.api.state import ChatDep, MemoryDep, StateDep
from gemma_service.chat.router import ChatRouter
from gemma_service.engine.protocol import ModelInfo
from gemma_service.errors import InvalidRequestError, NotFoundError
from gemma_service.memory.service import MemoryService
from gemma_service.models.pool import ModelStatus

router = APIRouter(tags=["ollama"])

# The Ollama API version this server answers like: clients enable features (tools, thinking,
# structured outputs) by it.
OLLAMA_API_VERSION = "0.12.0"
# Loaded models stay loaded: Ollama writes a far-off expiry for "keep alive for ever".
_NEVER = "2318-01-01T00:00:00Z"
_QUANT = re.compile(r"(?i)(?:^|[-_.])((?:i?q\d(?:_[a-z0-9]+)*)|bf16|f16|f32)(?:$|[-_.])")
_FAMILY = re.compile(r"(?i)gemma[-_]?(\d+n?)")


def model_names(info: ModelInfo) -> set[str]:
    return {info.model_id, f"{info.model_id}:latest"}


def model_details(info: ModelInfo) -> dict[str, Any]:
    family_match = _FAMILY.search(info.model_id) or _FAMILY.search(info.path)
    family = f"gemma{family_match.group(1).lower()}" if family_match else "gemma"
    quant = _QUANT.search(info.model_id) or _QUANT.search(info.path.rsplit("/", 1)[-1])
    return {
        "parent_model": "",
        "format": "gguf",
        "family": family,
        "families": [family],
        "parameter_size": _parameter_size(info.n_params),
        "quantization_level": quant.group(1).upper() if quant else "",
    }


def _parameter_size(n: int) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.1f}B"
    return f"{n / 1e6:.2f}M" if n else ""


def model_digest(info: ModelInfo) -> str:
    """A stable identifier of the model file (path, size, time), not a hash of its bytes."""
    return hashlib.sha256(f"{info.path}:{info.size_bytes}:{info.created}".encode()).hexdigest()


def model_entry(info: ModelInfo) -> dict[str, Any]:
    return {
        "name": info.model_id,
        "model": info.model_id,
        "modified_at": created_at(info.created),
        "size": info.size_bytes,
        "digest": model_digest(info),
        "details": model_details(info),
    }


@router.head("/", include_in_schema=False)
async def ollama_heartbeat() -> Response:
    return Response(status_code=200)


@router.get("/api/version")
async def ollama_version() -> dict[str, str]:
    return {"version": OLLAMA_API_VERSION, "gemma_service": __version__}


@router.get("/api/tags")
async def ollama_tags(chat: ChatDep, state: StateDep) -> dict[str, Any]:
    """Every model this server serves, loaded or not."""
    return {"models": [model_entry(_info(chat, s)) for s in state.models.status()]}


@router.get("/api/ps")
async def ollama_ps(state: StateDep) -> dict[str, Any]:
    """The models loaded now (none while the server loads)."""
    if state.chat is None:
        return {"models": []}
    loaded = dict(state.models.loaded())
    models = []
    for status in state.models.status():
        engine = loaded.get(status.id)
        if engine is None:
            continue
        info = engine.model_info
        entry = model_entry(info)
        entry.update(
            expires_at=_NEVER
            if status.unload_in_s is None
            else created_at(time.time() + status.unload_in_s),
            # Whole-model figure: llama.cpp does not report the bytes of the offloaded layers.
            size_vram=info.size_bytes if engine.health().gpu_layers > 0 else 0,
            context_length=info.n_ctx,
        )
        models.append(entry)
    return {"models": models}


def _info(chat: ChatRouter, status: ModelStatus) -> ModelInfo:
    """A model's info as last loaded; for one never loaded, what its file tells."""
    known = chat.known_info.get(status.id)
    if known is not None:
        return known
    mtime = int(Path(status.path).stat().st_mtime) if Path(status.path).exists() else 0
    return ModelInfo(status.id, status.path, 0, 0, 0, None, "", "", True,
                     status.size_bytes, 0, mtime)  # fmt: skip


@router.post("/api/show")
async def ollama_show(body: OllamaShowRequest, chat: ChatDep, state: StateDep) -> dict[str, Any]:
    if len(state.models.catalogue.ids) == 1:  # one model: its own names only
        info = chat.model_info
        if body.model not in model_names(info):
            raise NotFoundError(f"model '{body.model}' not found", param="model")
    elif state.models.catalogue.find(body.model) is None:
        raise NotFoundError(f"model '{body.model}' not found", param="model")
    else:
        info = await chat.model_info_for(body.model)
    details = model_details(info)
    family = details["family"]
    return {
        "modelfile": f"# served by gemma-service\nFROM {info.path}\n",
        "parameters": "",
        "template": info.chat_template or "",
        "details": details,
        "model_info": {
            "general.architecture": family,
            "general.parameter_count": info.n_params,
            f"{family}.context_length": info.n_ctx_train,
            f"{family}.vocab_size": info.n_vocab,
        },
        "capabilities": ["completion", "tools"],
        "modified_at": created_at(info.created),
    }


@router.post("/api/embed")
async def ollama_embed(body: OllamaEmbedRequest, memory: MemoryDep) -> dict[str, Any]:
    texts = [body.input] if isinstance(body.input, str) else list(body.input)
    if not texts or len(texts) > MAX_INPUTS:
        raise InvalidRequestError(f"'input' needs 1 to {MAX_INPUTS} texts", param="input")
    if any(not text for text in texts):
        raise InvalidRequestError("'input' must not hold empty strings", param="input")
    started = time.perf_counter()
    vectors = await asyncio.to_thread(_embed, memory, texts, body.model)
    return {
        "model": body.model,
        "embeddings": [shorten(v, body.dimensions) for v in vectors],
        "total_duration": round((time.perf_counter() - started) * 1e9),
        "load_duration": 0,
        "prompt_eval_count": sum(len(t.split()) for t in texts),  # whitespace words: cheap
    }


@router.post("/api/embeddings")
async def ollama_embeddings(body: OllamaEmbeddingsRequest, memory: MemoryDep) -> dict[str, Any]:
    [vector] = await asyncio.to_thread(_embed, memory, [body.prompt], body.model)
    return {"embedding": vector}


def _embed(memory: MemoryService, texts: list[str], model: str) -> list[list[float]]:
    name = model if model in memory.embedders else None
    return memory.embed(texts, name)[1]
