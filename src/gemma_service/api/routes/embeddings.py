"""POST /v1/embeddings (OpenAI schema), served by the memory's embedders."""

from __future__ import annotations

import asyncio
import base64
import math
import struct
from typing import Any

from fastapi import APIRouter

from gemma_service.api.openai_protocol import EmbeddingRequest
from gemma_service.api.state import MemoryDep
from gemma_service.errors import InvalidRequestError

router = APIRouter(tags=["openai"])

MAX_INPUTS = 2048


def shorten(vector: list[float], dimensions: int | None) -> list[float]:
    """OpenAI's ``dimensions``: keep the first n components, renormalized to unit length."""
    if dimensions is None or dimensions == len(vector):
        return vector
    if dimensions > len(vector):
        raise InvalidRequestError(
            f"'dimensions' is {dimensions}; this model's embeddings have {len(vector)}",
            param="dimensions",
        )
    head = vector[:dimensions]
    norm = math.sqrt(sum(x * x for x in head)) or 1.0
    return [x / norm for x in head]


def encode(vector: list[float], encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


@router.post("/v1/embeddings")
async def embeddings(body: EmbeddingRequest, memory: MemoryDep) -> dict[str, Any]:
    texts = [body.input] if isinstance(body.input, str) else list(body.input)
    if len(texts) > MAX_INPUTS:
        raise InvalidRequestError(f"at most {MAX_INPUTS} inputs per request", param="input")
    if any(not t for t in texts):
        raise InvalidRequestError("inputs must not be empty strings", param="input")
    name, vectors = await asyncio.to_thread(memory.embed, texts, body.model)
    n_tokens = sum(len(t.split()) for t in texts)  # whitespace words: an estimate, cheap
    return {
        "object": "list",
        "data": [
            {
                "object": "embedding",
                "index": i,
                "embedding": encode(shorten(v, body.dimensions), body.encoding_format),
            }
            for i, v in enumerate(vectors)
        ],
        "model": name,
        "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens},
    }
