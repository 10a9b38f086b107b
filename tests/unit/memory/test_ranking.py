"""Ranking rules: fusion, soft preferences, content-free lines, supersession, diversity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from gemma_service.memory.models import MemoryItem
from gemma_service.memory.ranking import (
    Candidate,
    RankingWeights,
    apply_preferences,
    fuse,
    select_top,
    supersede,
)
from gemma_service.memory.understanding.query_plan import plan_query

T0 = datetime(2025, 3, 1, tzinfo=UTC)


def candidate(
    name: str,
    *,
    days: float = 0,
    vector: list[float] | None = None,
    score: float = 0.0,
    **fields: Any,
) -> Candidate:
    when = T0 + timedelta(days=days)
    item = MemoryItem(
        id=name, text=name, kind="transcript", timestamp=when, created_at=when, **fields
    )
    unit = None if vector is None else np.asarray(vector, dtype=np.float32) / np.linalg.norm(vector)
    return Candidate(item=item, vector=unit, score=score)


def plan(question: str, speakers: tuple[str, ...] = ()) -> Any:
    return plan_query(question, speakers=list(speakers), anchor=T0 + timedelta(days=60))


def test_rrf_fusion_rewards_agreement_and_scales_the_best_to_one() -> None:
    a, b, c = candidate("a"), candidate("b"), candidate("c")
    a.lexical_score, a.cosine = 9.0, 0.1
    b.lexical_score, b.cosine = 5.0, 0.9
    c.lexical_score, c.cosine = None, 0.8
    fuse([a, b, c], RankingWeights(fusion="rrf", rrf_k=60))
    assert sorted([a, b, c], key=lambda x: -x.score) == [b, a, c]
    best = candidate("best")
    best.lexical_score, best.cosine = 1.0, 1.0
    fuse([best], RankingWeights(fusion="rrf"))
    assert best.score == 1.0


def test_mixed_fusion_adds_cosine_and_a_rank_share_of_the_word_match() -> None:
    first, second = candidate("first"), candidate("second")
    first.lexical_score, first.cosine = 3.0, 0.2
    second.lexical_score, second.cosine = 1.0, 0.5
    fuse([first, second], RankingWeights(fusion="mixed", rrf_k=5, lexical_weight=0.15))
    assert first.score == 0.2 + 0.15
    assert second.score == 0.5 + 0.15 * 6 / 7


def test_linear_fusion_adds_cosine_and_scaled_word_match() -> None:
    words, meaning = candidate("words"), candidate("meaning")
    words.lexical_score, words.cosine = 8.0, 0.1
    meaning.lexical_score, meaning.cosine = None, 0.6
    fuse([words, meaning], RankingWeights(fusion="linear", lexical_weight=0.25))
    assert words.score == 0.1 + 0.25 and meaning.score == 0.6
    assert words.lexical_rank == 1 and meaning.vector_rank == 1


def test_preferences_boost_the_named_speaker_the_time_and_the_feeling() -> None:
    weights = RankingWeights(fusion="linear", speaker_boost=0.3, time_boost=1.0, emotion_boost=0.3)
    sam = candidate("sam", days=-5, score=0.5, speaker="Sam")
    march = candidate("march", days=10, score=0.5)
    angry = candidate("angry", days=-5, score=0.5, emotion="frustrated")
    question = plan("Why was Sam annoyed in March?", ("Sam",))
    apply_preferences([sam, march, angry], question, weights)
    assert (sam.score, march.score, angry.score) == (0.8, 1.5, 0.8)


def test_a_time_range_with_nothing_in_it_changes_nothing() -> None:
    item = candidate("april", days=40, score=0.5)
    apply_preferences([item], plan("What happened in early March?"), RankingWeights(time_boost=1.0))
    assert item.score == 0.5


def test_content_free_lines_sink() -> None:
    line = candidate("Agreed.", score=1.0)
    line.content_free = True
    apply_preferences([line], plan("What did we agree?"), RankingWeights(content_free_factor=0.1))
    assert line.score == 0.1


def test_a_newer_similar_statement_supersedes_an_older_one() -> None:
    weights = RankingWeights(supersede_factor=0.5, supersede_similarity=0.8)
    first = candidate("ships May 3", days=0, vector=[1, 0.1], score=1.0)
    moved = candidate("moves to May 17", days=10, vector=[1, 0.2], score=0.9)
    other = candidate("office move", days=20, vector=[0, 1], score=0.8)
    supersede([first, moved, other], weights)
    assert first.score == 0.5  # superseded by the newer, similar statement
    assert moved.score == 0.9  # the unrelated newer memory does not supersede it
    assert other.score == 0.8


def test_a_much_weaker_newer_match_does_not_supersede() -> None:
    weights = RankingWeights(supersede_factor=0.5, supersede_similarity=0.8)
    strong = candidate("the answer", days=0, vector=[1, 0], score=1.0)
    weak = candidate("barely related", days=5, vector=[1, 0.1], score=0.3)
    supersede([strong, weak], weights)
    assert strong.score == 1.0


def test_diversity_lets_a_second_subject_into_a_many_item_answer() -> None:
    weights = RankingWeights(diversity=0.5)
    a = candidate("a", vector=[1, 0], score=1.0)
    a_again = candidate("a again", vector=[1, 0.05], score=0.9)
    b = candidate("b", vector=[0, 1], score=0.7)
    assert [c.item.id for c in select_top([a, a_again, b], 2, weights)] == ["a", "a again"]
    assert [c.item.id for c in select_top([a, a_again, b], 2, weights, many=True)] == ["a", "b"]


def test_near_duplicates_are_pushed_down() -> None:
    weights = RankingWeights(duplicate_similarity=0.95, duplicate_factor=0.5)
    a = candidate("a", vector=[1, 0], score=1.0)
    a_again = candidate("a again", vector=[1, 0.01], score=0.9)
    b = candidate("b", vector=[0, 1], score=0.6)
    assert [c.item.id for c in select_top([a, a_again, b], 2, weights)] == ["a", "b"]
