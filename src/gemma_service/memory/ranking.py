"""Scoring retrieved candidates: lexical + vector fusion, soft preferences from the question,
supersession of older statements, and a diverse top k. Pure functions, no I/O."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from gemma_service.memory.models import MemoryItem
from gemma_service.memory.store import FloatVector
from gemma_service.memory.understanding.emotions import label_matches
from gemma_service.memory.understanding.query_plan import QueryPlan, content_words


@dataclass(frozen=True)
class RankingWeights:
    """Every knob of the ranking, tuned on the development set (docs/memory.md)."""

    fusion: str = "rrf"  # "rrf": reciprocal rank; "linear": weighted cosine + scaled BM25
    rrf_k: float = 2.0
    lexical_weight: float = 1.0
    vector_weight: float = 1.0
    speaker_boost: float = 0.0
    time_boost: float = 0.0
    emotion_boost: float = 0.0
    meeting_boost: float = 0.0  # times the share of a memory's meeting name the question names
    content_free_factor: float = 1.0
    supersede_factor: float = 1.0  # score kept by a statement a newer similar one supersedes
    supersede_similarity: float = 0.6
    duplicate_similarity: float = 1.01  # above this cosine, a later pick counts as a repeat
    duplicate_factor: float = 1.0
    diversity: float = 0.0  # for questions wanting several items: score lost per unit of
    # cosine similarity to the closest item already chosen (maximal marginal relevance)


@dataclass
class Candidate:
    """One memory found by some signal, with what each signal said about it."""

    item: MemoryItem
    vector: FloatVector | None = None
    cosine: float | None = None
    lexical_score: float | None = None
    lexical_rank: int | None = None
    vector_rank: int | None = None
    content_free: bool = False
    score: float = 0.0
    notes: list[str] = field(default_factory=list)


def rank_by(values: dict[str, float]) -> dict[str, int]:
    """1-based ranks, highest value first; equal values share the better rank."""
    ordered = sorted(values, key=lambda k: -values[k])
    ranks: dict[str, int] = {}
    for position, key in enumerate(ordered, 1):
        previous = ordered[position - 2] if position > 1 else None
        tied = previous is not None and values[previous] == values[key]
        ranks[key] = ranks[previous] if tied and previous is not None else position
    return ranks


def fuse(candidates: Sequence[Candidate], weights: RankingWeights) -> None:
    """Weighted reciprocal-rank fusion of the lexical and the vector ranking of the
    candidates, scaled so first in both scores 1."""
    by_id = {c.item.id: c for c in candidates}
    lexical = rank_by({i: c.lexical_score for i, c in by_id.items() if c.lexical_score is not None})
    vector = rank_by({i: c.cosine for i, c in by_id.items() if c.cosine is not None})
    if weights.fusion == "mixed":
        k = weights.rrf_k
        for item_id, candidate in by_id.items():
            candidate.lexical_rank = lexical.get(item_id)
            candidate.vector_rank = vector.get(item_id)
            lexical_part = (k + 1) / (k + candidate.lexical_rank) if candidate.lexical_rank else 0.0
            candidate.score = weights.vector_weight * max(0.0, candidate.cosine or 0.0) + (
                weights.lexical_weight * lexical_part
            )
        return
    if weights.fusion == "linear":
        best_lexical = max((c.lexical_score or 0.0 for c in candidates), default=0.0) or 1.0
        for item_id, candidate in by_id.items():
            candidate.lexical_rank = lexical.get(item_id)
            candidate.vector_rank = vector.get(item_id)
            candidate.score = weights.vector_weight * max(0.0, candidate.cosine or 0.0) + (
                weights.lexical_weight * max(0.0, candidate.lexical_score or 0.0) / best_lexical
            )
        return
    k = weights.rrf_k
    best = (weights.lexical_weight if lexical else 0.0) + (weights.vector_weight if vector else 0.0)
    for item_id, candidate in by_id.items():
        candidate.lexical_rank = lexical.get(item_id)
        candidate.vector_rank = vector.get(item_id)
        total = 0.0
        if candidate.lexical_rank is not None:
            total += weights.lexical_weight * (k + 1) / (k + candidate.lexical_rank)
        if candidate.vector_rank is not None:
            total += weights.vector_weight * (k + 1) / (k + candidate.vector_rank)
        candidate.score = total / best if best else 0.0


def apply_preferences(
    candidates: Sequence[Candidate], plan: QueryPlan, weights: RankingWeights
) -> None:
    """Boost what the question asked for (speaker, time, emotion); sink content-free lines."""
    in_range = plan.time_range is not None and any(
        plan.time_range.contains(c.item.timestamp) for c in candidates
    )
    additive = weights.fusion in ("linear", "mixed")
    for candidate in candidates:
        item = candidate.item
        boosts = []
        if plan.speakers and item.speaker in plan.speakers:
            boosts.append(weights.speaker_boost)
        if in_range and plan.time_range is not None and plan.time_range.contains(item.timestamp):
            boosts.append(weights.time_boost)
        if plan.emotions and label_matches(item.emotion, plan.emotions):
            boosts.append(weights.emotion_boost)
        if weights.meeting_boost and plan.words:
            boosts.append(weights.meeting_boost * meeting_overlap(item, plan.words))
        if additive:
            candidate.score += sum(boosts)
        else:
            for boost in boosts:
                candidate.score *= 1.0 + boost
        if candidate.content_free:
            candidate.score *= weights.content_free_factor


def meeting_overlap(item: MemoryItem, question_words: frozenset[str]) -> float:
    """The share of the words naming a memory's meeting (source, conversation id, short
    metadata values) that the question uses: 'at the budget review' names all of 'Budget
    review', 'the offsite' a third of 'Leadership offsite planning'."""
    names = [item.source or "", item.conversation_id or ""]
    names += [v for v in item.metadata.values() if isinstance(v, str) and len(v) <= 80]
    words = meeting_words(tuple(names))
    return len(words & question_words) / len(words) if words else 0.0


@functools.lru_cache(maxsize=4096)
def meeting_words(names: tuple[str, ...]) -> frozenset[str]:
    """The words of a meeting's names, numbers (dates in ids) left out; few distinct names
    recur across many memories, hence the cache."""
    return frozenset(w for name in names for w in content_words(name) if not w.isdigit())


def similarity(a: Candidate, b: Candidate) -> float:
    if a.vector is None or b.vector is None:
        return 0.0
    return float(np.dot(a.vector, b.vector))


# A reply in the same meeting does not supersede a statement; a later meeting can.
SAME_MEETING = timedelta(hours=6)


def supersede(candidates: Sequence[Candidate], weights: RankingWeights) -> None:
    """For 'now / latest' questions: a statement with a newer, similar statement among the
    candidates (the same subject, said in a later meeting, scoring at least half as well)
    keeps only part of its score."""
    if weights.supersede_factor >= 1.0:
        return
    live = [c for c in candidates if not c.content_free and c.vector is not None]
    if len(live) < 2:
        return
    vectors = np.stack([c.vector for c in live if c.vector is not None])
    similar = (vectors @ vectors.T) >= weights.supersede_similarity
    oldest = datetime.min.replace(tzinfo=UTC)
    times = np.array([(c.item.timestamp or oldest).timestamp() for c in live])
    later = (times[None, :] - times[:, None]) >= SAME_MEETING.total_seconds()
    scores = np.array([c.score for c in live])
    strong = scores[None, :] >= 0.5 * scores[:, None]
    # Row i is superseded when some column j is later, similar and scores well enough.
    for candidate, superseded in zip(live, (similar & later & strong).any(axis=1), strict=True):
        if superseded:
            candidate.score *= weights.supersede_factor


def select_top(
    candidates: Sequence[Candidate], top_k: int, weights: RankingWeights, many: bool = False
) -> list[Candidate]:
    """The best ``top_k``, taken one at a time: a candidate that nearly repeats one already
    taken keeps only part of its score, so near-duplicates do not fill the top."""
    oldest = datetime.min.replace(tzinfo=UTC)
    remaining = sorted(
        candidates, key=lambda c: (-c.score, -(c.item.timestamp or oldest).timestamp())
    )
    chosen: list[Candidate] = []
    while remaining and len(chosen) < top_k:
        best_index, best_value = 0, -1.0
        for index, candidate in enumerate(remaining):
            value = candidate.score
            if chosen and (weights.duplicate_factor < 1.0 or (many and weights.diversity)):
                closest = max(similarity(candidate, c) for c in chosen)
                if closest >= weights.duplicate_similarity:
                    value *= weights.duplicate_factor
                if many:
                    value -= weights.diversity * max(0.0, closest)
            if value > best_value:
                best_index, best_value = index, value
        chosen.append(remaining.pop(best_index))
    return chosen
