"""Hybrid retrieval: lexical and vector rankings fused by reciprocal rank, biased to recent."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from gemma_service.memory.embedder import Embedder
from gemma_service.memory.models import NO_FILTERS, RankedId, SearchFilters, SearchHit
from gemma_service.memory.owners import OwnerScope
from gemma_service.memory.store import MemoryStore

logger = logging.getLogger(__name__)

SECONDS_PER_DAY = 86_400.0
# Far below the customary 60: with k = 60 neighbouring ranks score almost alike (1/61, 1/62),
# so the recency bias let new, barely related items overtake an old best match (docs/memory.md).
DEFAULT_RRF_K = 2


@dataclass(frozen=True)
class RetrievalResult:
    """What a search found, why it may be incomplete, and how long it took."""

    hits: list[SearchHit]
    warning: str | None
    elapsed_s: float


class MemoryRetriever(Protocol):
    """Anything that answers a memory search: the local hybrid retriever or a remote service.
    A search finds only memories the caller's ``scope`` may read."""

    def search(
        self,
        query: str,
        filters: SearchFilters = NO_FILTERS,
        top_k: int = 5,
        *,
        scope: OwnerScope,
    ) -> RetrievalResult: ...


@dataclass(frozen=True)
class RecencyBias:
    """Scales scores by age: ``(1 - weight) + weight * 0.5 ** (age / half_life)``.

    A half-life of 0 (or a weight of 0) turns the bias off."""

    half_life_days: float = 30.0
    weight: float = 0.2

    def factor(self, timestamp: datetime | None, now: datetime) -> float:
        if self.half_life_days <= 0 or self.weight <= 0 or timestamp is None:
            return 1.0
        age_days = max(0.0, (now - timestamp).total_seconds() / SECONDS_PER_DAY)
        decay: float = 0.5 ** (age_days / self.half_life_days)
        return (1.0 - self.weight) + self.weight * decay


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[RankedId]], k: int = DEFAULT_RRF_K
) -> dict[str, float]:
    """Sum of 1 / (k + rank) over the rankings, scaled so first in every ranking scores 1."""
    fused: dict[str, float] = {}
    for ranking in rankings:
        for candidate in ranking:
            fused[candidate.id] = fused.get(candidate.id, 0.0) + 1.0 / (k + candidate.rank)
    best_possible = max(1, len(rankings)) / (k + 1)
    return {item_id: score / best_possible for item_id, score in fused.items()}


class Retriever:
    """Searches a MemoryStore by words and, when an embedder runs, by meaning."""

    def __init__(
        self,
        store: MemoryStore,
        embedder: Embedder | None,
        *,
        recency: RecencyBias | None = None,
        candidates: int = 50,
        rrf_k: int = DEFAULT_RRF_K,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.embedder = embedder if store.embedding_dim is not None else None
        self.recency = recency or RecencyBias()
        self.candidates = candidates
        self.rrf_k = rrf_k
        self._clock = clock

    def search(
        self,
        query: str,
        filters: SearchFilters = NO_FILTERS,
        top_k: int = 5,
        *,
        scope: OwnerScope,
    ) -> RetrievalResult:
        started = time.perf_counter()
        pool = max(self.candidates, top_k)
        lexical = self.store.lexical_search(query, filters, pool, scope=scope)
        vector, warning = self._vector_ranking(query, filters, pool, scope)
        rankings = [lexical, vector] if self.embedder is not None else [lexical]
        hits = self._fuse(rankings, lexical, vector, scope)[:top_k]
        return RetrievalResult(hits, warning, time.perf_counter() - started)

    def _vector_ranking(
        self, query: str, filters: SearchFilters, pool: int, scope: OwnerScope
    ) -> tuple[list[RankedId], str | None]:
        if self.embedder is None or not query.strip():
            return [], None
        try:
            [embedding] = self.embedder.embed([query])
            return self.store.vector_search(embedding, filters, pool, scope=scope), None
        except Exception as exc:
            # A broken embedder must not take memory down: words still find things.
            logger.exception("vector search failed; using lexical results only")
            return [], f"vector search failed ({type(exc).__name__}); lexical results only"

    def _fuse(
        self,
        rankings: list[list[RankedId]],
        lexical: list[RankedId],
        vector: list[RankedId],
        scope: OwnerScope,
    ) -> list[SearchHit]:
        fused = reciprocal_rank_fusion(rankings, self.rrf_k)
        items = self.store.get_many(list(fused), scope=scope)
        lexical_ranks = {c.id: c.rank for c in lexical}
        vector_by_id = {c.id: c for c in vector}
        now = self._clock()
        hits = [
            SearchHit(
                item=item,
                score=fused[item_id] * self.recency.factor(item.timestamp, now),
                lexical_rank=lexical_ranks.get(item_id),
                vector_rank=vector_by_id[item_id].rank if item_id in vector_by_id else None,
                similarity=vector_by_id[item_id].score if item_id in vector_by_id else None,
            )
            for item_id, item in items.items()
        ]
        oldest_possible = datetime.min.replace(tzinfo=UTC)
        hits.sort(key=lambda h: (-h.score, -(h.item.timestamp or oldest_possible).timestamp()))
        return hits
