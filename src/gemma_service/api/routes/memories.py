"""Memory API: POST /v1/memories, GET /v1/memories/search, GET/DELETE /v1/memories/{id}.

Every route works in the caller's owner scope: what it stores is the caller's, and it finds,
reads and deletes only what the scope may read (another owner's id is a 404, like a missing one).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query

from gemma_service.api.state import MemoryDep, OwnerScopeDep
from gemma_service.memory.models import SearchFilters, parse_memory_batch

router = APIRouter(tags=["memory"])

MemoryBody = Annotated[
    dict[str, Any] | list[dict[str, Any]],
    Body(description='one memory object, a list of them, or {"items": [...]}'),
]


@router.post("/v1/memories")
async def add_memories(body: MemoryBody, memory: MemoryDep, scope: OwnerScopeDep) -> dict[str, Any]:
    """Store one memory or a batch, atomically; long documents are chunked (one id a chunk)."""
    raw: Any = body
    if isinstance(body, Mapping) and "items" in body and "text" not in body:
        raw = body["items"]
    items = parse_memory_batch(raw)
    ids = await asyncio.to_thread(memory.ingest, items, scope=scope)
    return {"ids": ids, "count": len(ids)}


@router.get("/v1/memories/search")
async def search_memories(
    memory: MemoryDep,
    scope: OwnerScopeDep,
    q: Annotated[str, Query(min_length=1, max_length=10_000)],
    top_k: Annotated[int, Query(ge=1, le=100)] = 5,
    speaker: str | None = None,
    kind: str | None = None,
    conversation_id: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> dict[str, Any]:
    filters = SearchFilters.parse(
        {
            k: v
            for k, v in {
                "speaker": speaker,
                "kind": kind,
                "conversation_id": conversation_id,
                "since": since,
                "until": until,
            }.items()
            if v is not None
        }
    )
    result = await asyncio.to_thread(memory.search, q, filters, top_k, scope=scope)
    return {
        "query": q,
        "results": [hit.to_dict() for hit in result.hits],
        "warning": result.warning,
        "retrieval_time": round(result.elapsed_s, 4),
    }


@router.get("/v1/memories/{memory_id}")
async def get_memory(memory_id: str, memory: MemoryDep, scope: OwnerScopeDep) -> dict[str, Any]:
    item = await asyncio.to_thread(memory.get, memory_id, scope=scope)
    return item.to_dict()


@router.delete("/v1/memories/{memory_id}")
async def delete_memory(memory_id: str, memory: MemoryDep, scope: OwnerScopeDep) -> dict[str, Any]:
    await asyncio.to_thread(memory.delete, memory_id, scope=scope)
    return {"id": memory_id, "deleted": True}
