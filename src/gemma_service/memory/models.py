"""Memory types: what a client sends, what the store keeps, and what a search returns."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gemma_service.errors import InvalidRequestError

M = TypeVar("M", bound=BaseModel)
MemoryKind = Literal["transcript", "note", "document"]
MEMORY_KINDS: tuple[MemoryKind, ...] = ("transcript", "note", "document")
MAX_TEXT_CHARS = 1_000_000


def as_aware_utc(value: datetime) -> datetime:
    """Timestamps without a zone are taken as UTC; all are returned in UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def new_memory_id() -> str:
    return f"mem_{uuid.uuid4().hex}"


class MemoryItemIn(BaseModel):
    """One memory as a client sends it (POST /v1/memories)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    kind: MemoryKind = "note"
    speaker: str | None = Field(default=None, max_length=200)
    timestamp: datetime | None = None
    emotion: str | None = Field(default=None, max_length=100)
    source: str | None = Field(default=None, max_length=1000)
    conversation_id: str | None = Field(default=None, max_length=200)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("timestamp")
    @classmethod
    def _aware_timestamp(cls, value: datetime | None) -> datetime | None:
        return None if value is None else as_aware_utc(value)

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> MemoryItemIn:
        """Validate client data; a bad field raises InvalidRequestError naming it."""
        return validate_or_invalid_request(cls, data)


MAX_BATCH_ITEMS = 1000


def parse_memory_batch(body: Any) -> list[MemoryItemIn]:
    """One memory (an object) or a batch (a list of objects); an error names the item's index,
    e.g. param ``[2].timestamp``."""
    if isinstance(body, Mapping):
        return [MemoryItemIn.parse(body)]
    if not isinstance(body, list) or not body:
        raise InvalidRequestError("expected a memory object or a non-empty list of them")
    if len(body) > MAX_BATCH_ITEMS:
        raise InvalidRequestError(f"at most {MAX_BATCH_ITEMS} memories per request")
    items = []
    for index, entry in enumerate(body):
        if not isinstance(entry, Mapping):
            raise InvalidRequestError(f"[{index}]: expected an object", param=f"[{index}]")
        try:
            items.append(MemoryItemIn.parse(entry))
        except InvalidRequestError as exc:
            param = f"[{index}].{exc.param}" if exc.param else f"[{index}]"
            raise InvalidRequestError(f"[{index}].{exc.message}", param=param) from exc
    return items


@dataclass(frozen=True)
class MemoryItem:
    """A stored memory (one chunk of a long document is one item). Stores always set
    ``timestamp``; only items from a remote retrieval service may lack one."""

    id: str
    text: str
    kind: MemoryKind
    timestamp: datetime | None
    created_at: datetime
    speaker: str | None = None
    emotion: str | None = None
    source: str | None = None
    conversation_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    parent_id: str | None = None
    chunk_index: int = 0
    chunk_count: int = 1
    # Whose memory this is (memory/owners.py); None only for items of a remote service that
    # does not say.
    owner: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, timestamps as ISO 8601."""
        return {
            "id": self.id,
            "text": self.text,
            "kind": self.kind,
            "speaker": self.speaker,
            "timestamp": self.timestamp.isoformat() if self.timestamp else None,
            "emotion": self.emotion,
            "source": self.source,
            "conversation_id": self.conversation_id,
            "metadata": self.metadata,
            "parent_id": self.parent_id,
            "chunk_index": self.chunk_index,
            "chunk_count": self.chunk_count,
            "created_at": self.created_at.isoformat(),
            "owner": self.owner,
        }


@dataclass(frozen=True)
class MemoryRecord:
    """What the store writes: an item plus its embedding (None when no embedder runs)."""

    item: MemoryItem
    embedding: list[float] | None = None


class SearchFilters(BaseModel):
    """Restricts a search; unset fields do not filter."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    speaker: str | None = None
    kind: MemoryKind | None = None
    conversation_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    @field_validator("since", "until")
    @classmethod
    def _aware_bounds(cls, value: datetime | None) -> datetime | None:
        return None if value is None else as_aware_utc(value)

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> SearchFilters:
        """Validate filter fields (e.g. query parameters); errors name the field."""
        filters = validate_or_invalid_request(cls, data)
        if filters.since and filters.until and filters.since > filters.until:
            raise InvalidRequestError("'since' is later than 'until'", param="since")
        return filters

    def accepts(self, item: MemoryItem) -> bool:
        """Whether an item passes these filters (for results filtered after the fact)."""
        return (
            (self.speaker is None or item.speaker == self.speaker)
            and (self.kind is None or item.kind == self.kind)
            and (self.conversation_id is None or item.conversation_id == self.conversation_id)
            and (
                self.since is None or (item.timestamp is not None and item.timestamp >= self.since)
            )
            and (
                self.until is None or (item.timestamp is not None and item.timestamp <= self.until)
            )
        )


NO_FILTERS = SearchFilters()


@dataclass(frozen=True)
class RankedId:
    """One signal's candidate: an item id with its rank (1 = best) and raw score."""

    id: str
    rank: int
    score: float


@dataclass(frozen=True)
class SearchHit:
    """A retrieved memory with its fused score and the ranks each signal gave it."""

    item: MemoryItem
    score: float
    lexical_rank: int | None = None
    vector_rank: int | None = None
    similarity: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.item.to_dict(),
            "score": self.score,
            "lexical_rank": self.lexical_rank,
            "vector_rank": self.vector_rank,
            "similarity": self.similarity,
        }


def validate_or_invalid_request(model: type[M], data: Mapping[str, Any]) -> M:
    """Run pydantic validation, translating the first error into InvalidRequestError."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(part) for part in first["loc"]) or None
        raise InvalidRequestError(f"{param or 'body'}: {first['msg']}", param=param) from exc
