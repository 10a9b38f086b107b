"""Hybrid retrieval: candidates by words and by meaning, ranked by fusion, what the question
says (time, people, emotion, intent), recency and diversity."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import numpy as np

from gemma_service.memory.embedder import Embedder
from gemma_service.memory.models import NO_FILTERS, SearchFilters, SearchHit
from gemma_service.memory.owners import OwnerScope
from gemma_service.memory.ranking import (
    Candidate,
    RankingWeights,
    apply_preferences,
    fuse,
    select_top,
    supersede,
)
from gemma_service.memory.store import FloatVector, MemoryStore
from gemma_service.memory.understanding.intents import is_content_free
from gemma_service.memory.understanding.people import (
    RoleEvidence,
    name_parts,
    speakers_for_role,
)
from gemma_service.memory.understanding.query_plan import (
    QueryPlan,
    plan_query,
    reference_time,
)

logger = logging.getLogger(__name__)

SECONDS_PER_DAY = 86_400.0
# The weights the tuning set chose (docs/memory.md, "What each change did").
TUNED_WEIGHTS = RankingWeights(
    fusion="mixed",
    # Far below the customary 60: with k = 60 neighbouring ranks score almost alike, and the
    # word match would add nearly the same to every candidate (docs/memory.md).
    rrf_k=5,
    vector_weight=1.0,
    lexical_weight=0.15,
    content_free_factor=0.1,
    time_boost=1.0,
    speaker_boost=0.3,
    emotion_boost=0.3,
    meeting_boost=0.3,
    supersede_factor=0.5,
    supersede_similarity=0.5,
)


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


class Retriever:
    """Searches a MemoryStore by words and, when an embedder runs, by meaning; reads the
    question for time, people, emotion and intent, and ranks with those as soft preferences.

    Filters passed in are hard limits; what the question itself says only reorders."""

    def __init__(
        self,
        store: MemoryStore,
        embedder: Embedder | None,
        *,
        recency: RecencyBias | None = None,
        candidates: int = 50,
        weights: RankingWeights | None = None,
        preference_pool: int = 20,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.embedder = embedder if store.embedding_dim is not None else None
        self.recency = recency or RecencyBias()
        self.candidates = candidates
        self.weights = weights or TUNED_WEIGHTS
        self.preference_pool = preference_pool
        self._clock = clock
        self._facts = StoreFactsCache(store)

    def search(
        self,
        query: str,
        filters: SearchFilters = NO_FILTERS,
        top_k: int = 5,
        *,
        scope: OwnerScope,
    ) -> RetrievalResult:
        started = time.perf_counter()
        facts = self._facts.get(scope)
        plan = self.plan(query, filters, scope=scope, facts=facts)
        embedding, warning = self._embed(plan.content)
        found = self._gather(plan, embedding, filters, max(self.candidates, top_k), scope)
        candidates = self._candidates(found, embedding, facts.names, scope)
        rank_candidates(candidates, plan, self.weights, self.recency, self._clock())
        chosen = select_top(candidates, top_k, self.weights, many=plan.many)
        hits = [
            SearchHit(
                item=c.item,
                score=c.score,
                lexical_rank=c.lexical_rank,
                vector_rank=c.vector_rank,
                similarity=c.cosine,
            )
            for c in chosen
        ]
        return RetrievalResult(hits, warning, time.perf_counter() - started)

    def plan(
        self,
        query: str,
        filters: SearchFilters = NO_FILTERS,
        *,
        scope: OwnerScope,
        facts: StoreFacts | None = None,
    ) -> QueryPlan:
        """How the question is read: content words, time range, speakers, emotion, intent
        (people and times are those of the memories ``scope`` may read)."""
        facts = facts or self._facts.get(scope)
        anchor = reference_time(self._clock(), facts.newest)
        return plan_query(
            query,
            speakers=facts.speakers,
            anchor=anchor,
            role_holders=lambda role: self._role_holders(role, filters, facts.speakers, scope),
        )

    def _role_holders(
        self, role: str, filters: SearchFilters, speakers: list[str], scope: OwnerScope
    ) -> list[str]:
        """Who the memories say holds ``role`` ('Daniel, our CTO, ...')."""
        wider = filters.model_copy(update={"speaker": None, "since": None, "until": None})
        found = self.store.lexical_search(role, wider, ROLE_EVIDENCE, scope=scope)
        items = self.store.get_many([r.id for r in found], scope=scope)
        evidence = [RoleEvidence(i.text, i.speaker) for i in items.values()]
        return speakers_for_role(role, evidence, speakers)

    def _embed(self, text: str) -> tuple[FloatVector | None, str | None]:
        if self.embedder is None or not text.strip():
            return None, None
        try:
            [embedding] = self.embedder.embed([text])
            return np.asarray(embedding, dtype=np.float32), None
        except Exception as exc:
            # A broken embedder must not take memory down: words still find things.
            logger.exception("vector search failed; using lexical results only")
            return None, f"vector search failed ({type(exc).__name__}); lexical results only"

    def _gather(
        self,
        plan: QueryPlan,
        embedding: FloatVector | None,
        filters: SearchFilters,
        pool: int,
        scope: OwnerScope,
    ) -> dict[str, float | None]:
        """Candidate ids with their lexical score (None: not matched by words), from the whole
        store and from the parts the question prefers (its speakers, its time range)."""
        found: dict[str, float | None] = {}
        narrowed = [(filters, pool)] + [(f, self.preference_pool) for f in preferred(plan, filters)]
        for part, limit in narrowed:
            for ranked in self.store.lexical_search(plan.lexical, part, limit, scope=scope):
                found[ranked.id] = ranked.score
            if embedding is not None:
                try:
                    vector = embedding.tolist()
                    for ranked in self.store.vector_search(vector, part, limit, scope=scope):
                        found.setdefault(ranked.id, None)
                except Exception:
                    logger.exception("vector search failed; using lexical results only")
        return found

    def _candidates(
        self,
        found: dict[str, float | None],
        embedding: FloatVector | None,
        names: frozenset[str],
        scope: OwnerScope,
    ) -> list[Candidate]:
        items = self.store.get_many(list(found), scope=scope)
        vectors = self.store.embeddings_of(list(items)) if embedding is not None else {}
        candidates = []
        for item_id, item in items.items():
            vector = vectors.get(item_id)
            if vector is not None:
                norm = float(np.linalg.norm(vector))
                vector = vector / norm if norm else vector
            candidates.append(
                Candidate(
                    item=item,
                    vector=vector,
                    cosine=cosine(vector, embedding),
                    lexical_score=found[item_id],
                    content_free=is_content_free(item.text, names),
                )
            )
        return candidates


ROLE_EVIDENCE = 20


def cosine(vector: FloatVector | None, query: FloatVector | None) -> float | None:
    """Cosine similarity of a unit ``vector`` to ``query``; None when either is missing."""
    if vector is None or query is None:
        return None
    norm = float(np.linalg.norm(query))
    return float(np.dot(vector, query) / norm) if norm else 0.0


def preferred(plan: QueryPlan, filters: SearchFilters) -> list[SearchFilters]:
    """Narrower scopes to draw extra candidates from: each speaker the question names, and the
    time range it gives (within the caller's filters)."""
    scopes = []
    if filters.speaker is None:
        scopes += [filters.model_copy(update={"speaker": s}) for s in plan.speakers]
    if plan.time_range is not None:
        since = max(plan.time_range.since, filters.since or plan.time_range.since)
        until = plan.time_range.until - timedelta(microseconds=1)
        until = min(until, filters.until or until)
        if since <= until:
            scopes.append(filters.model_copy(update={"since": since, "until": until}))
    return scopes


def rank_candidates(
    candidates: list[Candidate],
    plan: QueryPlan,
    weights: RankingWeights,
    recency: RecencyBias,
    now: datetime,
) -> None:
    """Score every candidate in place: fusion, preferences, recency, supersession."""
    fuse(candidates, weights)
    apply_preferences(candidates, plan, weights)
    for candidate in candidates:
        candidate.score *= recency.factor(candidate.item.timestamp, now)
    if plan.latest:
        supersede(candidates, weights)


@dataclass(frozen=True)
class StoreFacts:
    speakers: list[str]
    newest: datetime | None

    @property
    def names(self) -> frozenset[str]:
        """Every word of every speaker's name, lower case (not content in a line)."""
        return frozenset(part for speaker in self.speakers for part in name_parts(speaker))


class StoreFactsCache:
    """Each scope's speakers and newest time, re-read when the newest time moves or after
    ``ttl_s`` (a write of an older memory by a new speaker shows up within that). One owner's
    facts never serve another's questions; the least recently used scopes are forgotten past
    ``max_scopes``."""

    def __init__(self, store: MemoryStore, ttl_s: float = 10.0, max_scopes: int = 256) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._max_scopes = max_scopes
        self._lock = threading.Lock()
        self._facts: OrderedDict[OwnerScope, tuple[StoreFacts, float]] = OrderedDict()

    def get(self, scope: OwnerScope) -> StoreFacts:
        newest = self._store.newest_timestamp(scope=scope)
        with self._lock:
            cached = self._facts.get(scope)
            if cached is not None:
                facts, read_at = cached
                if time.monotonic() - read_at < self._ttl_s and facts.newest == newest:
                    self._facts.move_to_end(scope)
                    return facts
        facts = StoreFacts(self._store.speakers(scope=scope), newest)
        with self._lock:
            self._facts[scope] = (facts, time.monotonic())
            self._facts.move_to_end(scope)
            while len(self._facts) > self._max_scopes:
                self._facts.popitem(last=False)
        return facts
