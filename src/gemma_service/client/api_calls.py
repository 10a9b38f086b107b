"""The HTTP calls the clients make, built once for both the sync and the async client."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict
from urllib.parse import quote

import httpx

DEFAULT_BASE_URL = "http://127.0.0.1:8080"
# Cloud Run ends a request at 300 s; connecting should be quick, or the service is down.
DEFAULT_TIMEOUT = httpx.Timeout(300.0, connect=10.0)

Messages = str | Sequence[Mapping[str, str]]


class GenerateOptions(TypedDict, total=False):
    """Optional fields of POST /generate; unset ones take the service's defaults."""

    max_tokens: int
    temperature: float
    top_p: float
    seed: int
    stop: list[str]


class ChatOptions(TypedDict, total=False):
    """Optional fields of POST /chat and /chat/stream (``use_rag`` asks memory for sources)."""

    max_tokens: int
    temperature: float
    top_p: float
    seed: int
    use_rag: bool
    rag_top_k: int
    context: list[str]
    conversation_id: str


class MemoryFields(TypedDict, total=False):
    """Optional fields of a memory (POST /v1/memories); timestamps may be datetimes."""

    kind: str
    speaker: str
    timestamp: datetime | str
    emotion: str
    source: str
    conversation_id: str
    metadata: dict[str, Any]


class MemoryFilters(TypedDict, total=False):
    """Filters of GET /v1/memories/search."""

    speaker: str
    kind: str
    conversation_id: str
    since: datetime | str
    until: datetime | str


@dataclass(frozen=True)
class ApiCall:
    """One request: method, path under the base URL, body or query, and whether resending it
    after a broken connection is harmless."""

    method: str
    path: str
    json: dict[str, Any] | None = None
    params: dict[str, Any] | None = None
    idempotent: bool = True


def resolve_base_url(base_url: str | None) -> str:
    """The base URL given, else ``GEMMA_SERVICE_URL``, else the local default."""
    return (base_url or os.environ.get("GEMMA_SERVICE_URL") or DEFAULT_BASE_URL).rstrip("/")


def default_headers(api_key: str | None, extra: Mapping[str, str] | None) -> dict[str, str]:
    """``Authorization: Bearer`` from ``api_key`` (or ``GEMMA_API_KEY``); ``extra`` overrides."""
    key = api_key if api_key is not None else os.environ.get("GEMMA_API_KEY")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    headers.update(extra or {})
    return headers


def as_messages(messages: Messages) -> list[dict[str, str]]:
    """A chat history; a bare string is one user message."""
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def _without_none(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def generate(prompt: str, options: Mapping[str, Any]) -> ApiCall:
    return ApiCall("POST", "/generate", json=_without_none({"prompt": prompt, **options}))


def chat(messages: Messages, options: Mapping[str, Any], *, stream: bool = False) -> ApiCall:
    body = _without_none({"messages": as_messages(messages), **options})
    return ApiCall("POST", "/chat/stream" if stream else "/chat", json=body)


def embeddings(texts: Sequence[str], model: str | None) -> ApiCall:
    return ApiCall(
        "POST", "/v1/embeddings", json=_without_none({"input": list(texts), "model": model})
    )


def add_memories(items: Iterable[Mapping[str, Any]]) -> ApiCall:
    payload = [_memory_json(item) for item in items]
    # Not idempotent: resending after a broken connection could store a memory twice.
    return ApiCall("POST", "/v1/memories", json={"items": payload}, idempotent=False)


def search_memories(query: str, top_k: int, filters: Mapping[str, Any]) -> ApiCall:
    params = _without_none({"q": query, "top_k": top_k, **filters})
    return ApiCall(
        "GET", "/v1/memories/search", params={k: _jsonable(v) for k, v in params.items()}
    )


def memory(method: str, memory_id: str) -> ApiCall:
    return ApiCall(method, f"/v1/memories/{quote(memory_id, safe='')}")


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _memory_json(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _jsonable(v) for k, v in _without_none(item).items()}


def embeddings_from_json(data: Any) -> list[list[float]]:
    """The vectors of an OpenAI embeddings response, in input order."""
    rows = sorted(data.get("data", []), key=lambda row: int(row.get("index", 0)))
    return [[float(x) for x in row["embedding"]] for row in rows]


def ids_from_json(data: Any) -> list[str]:
    ids = data.get("ids") if isinstance(data, Mapping) else None
    if ids is None and isinstance(data, Mapping) and "id" in data:
        ids = [data["id"]]
    return [str(i) for i in ids or []]
