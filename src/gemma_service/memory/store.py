"""The memory store interface that the SQLite and PostgreSQL backends both implement."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import numpy as np

from gemma_service.memory.models import MemoryItem, MemoryRecord, RankedId, SearchFilters
from gemma_service.memory.owners import OwnerScope

FloatVector = np.ndarray[Any, np.dtype[np.float32]]
# Weight of a match in a memory's metadata (speaker, emotion, source, conversation, metadata)
# relative to a match in its text, in both backends' lexical ranking.
ABOUT_WEIGHT = 0.5


class MemoryConfigError(Exception):
    """The memory store cannot be opened as configured. Raised at start-up, shown as one line."""


class EmbeddingDimensionMismatchError(MemoryConfigError):
    """The store was created for embeddings of another size than the embedder produces."""

    def __init__(self, stored_dim: int, embedder_dim: int, location: str) -> None:
        super().__init__(
            f"memory store {location} holds {stored_dim}-dimensional embeddings but the embedder "
            f"makes {embedder_dim}-dimensional ones; use the embedder the store was built with "
            "or a new store"
        )
        self.stored_dim = stored_dim
        self.embedder_dim = embedder_dim


@runtime_checkable
class MemoryStore(Protocol):
    """Persistent memories with lexical and vector search. Methods are thread-safe and durable:
    when ``add`` returns, the items survive a crash of the process.

    Every read takes the caller's ``scope`` and applies it in the query itself: an item of an
    owner outside the scope is never returned, counted or deleted, exactly as if it did not
    exist."""

    @property
    def embedding_dim(self) -> int | None:
        """Size of the stored embeddings, or None when the store holds none."""
        ...

    def add(self, records: Sequence[MemoryRecord]) -> list[str]:
        """Store all records in one transaction (all or nothing); return their ids in order.
        Every item names its owner (ValueError otherwise)."""
        ...

    def get(self, item_id: str, *, scope: OwnerScope) -> MemoryItem | None: ...

    def get_many(self, item_ids: Sequence[str], *, scope: OwnerScope) -> dict[str, MemoryItem]:
        """Items by id; unknown ids, and ids of items outside the scope, are absent."""
        ...

    def delete(self, item_id: str, *, scope: OwnerScope) -> bool:
        """Remove an item; False when there was none in the scope."""
        ...

    def lexical_search(
        self, query: str, filters: SearchFilters, limit: int, *, scope: OwnerScope
    ) -> list[RankedId]:
        """Items in the scope whose text or metadata match any query term, best first (a text
        match weighs more). Any user text is a valid query."""
        ...

    def vector_search(
        self, embedding: Sequence[float], filters: SearchFilters, limit: int, *, scope: OwnerScope
    ) -> list[RankedId]:
        """Nearest items by cosine distance, best first; score is the cosine similarity."""
        ...

    def embeddings_of(self, item_ids: Sequence[str]) -> dict[str, FloatVector]:
        """Stored vectors by id; items without one (or unknown) are absent. The ids come from a
        scoped search, and vectors never reach a caller."""
        ...

    def speakers(self, *, scope: OwnerScope) -> list[str]:
        """Every distinct speaker name among the scope's memories."""
        ...

    def newest_timestamp(self, *, scope: OwnerScope) -> datetime | None:
        """The latest memory time in the scope, or None when it holds none."""
        ...

    def count(self) -> int:
        """Items of every owner (an operator's figure; never shown to a caller)."""
        ...

    def close(self) -> None: ...


def require_owners(records: Sequence[MemoryRecord]) -> None:
    """Raise ValueError unless every record's item names its owner."""
    for record in records:
        if not record.item.owner:
            raise ValueError(f"memory {record.item.id} has no owner; the store refuses it")


# English words too common to say anything about relevance. PostgreSQL's 'english' text search
# configuration drops these too, so both backends rank the same terms.
_STOP_WORDS_TEXT = """
a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further
had has have having he her here hers herself him himself his how i if in into is it its
itself just me more most my myself no nor not now of off on once only or other our ours
ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were
what when where which while who whom why will with would you your yours yourself yourselves
"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
MAX_QUERY_TERMS = 64


def lexical_terms(query: str) -> list[str]:
    """Distinct lower-cased words of a query, stop words removed unless nothing else is left."""
    words = list(dict.fromkeys(w.lower() for w in _WORD.findall(query)))
    content = [w for w in words if w not in STOP_WORDS]
    return (content or words)[:MAX_QUERY_TERMS]


def check_embedding(embedding: Sequence[float], expected_dim: int | None) -> None:
    """Raise ValueError for a vector that the store cannot hold."""
    if expected_dim is None:
        raise ValueError("this memory store was opened without an embedding size")
    if len(embedding) != expected_dim:
        raise ValueError(f"embedding has {len(embedding)} values, the store expects {expected_dim}")
