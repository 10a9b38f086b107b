"""Hybrid retrieval: fusion, recency bias, filters, top_k and degraded modes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gemma_service.memory.models import (
    MemoryItem,
    MemoryRecord,
    SearchFilters,
    new_memory_id,
)
from gemma_service.memory.owners import OwnerScope
from gemma_service.memory.retriever import RecencyBias, Retriever
from gemma_service.memory.sqlite_store import SqliteMemoryStore

LOCAL = OwnerScope.local()

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def remember(
    store: SqliteMemoryStore, embedder: Any, text: str, age_days: float = 0, **fields: Any
) -> str:
    when = NOW - timedelta(days=age_days)
    item = MemoryItem(
        id=new_memory_id(),
        text=text,
        kind="transcript",
        timestamp=when,
        created_at=when,
        **fields,
        owner="local",
    )
    [embedding] = embedder.embed([text])
    return store.add([MemoryRecord(item, embedding)])[0]


def retriever_for(store: SqliteMemoryStore, embedder: Any, **kwargs: Any) -> Retriever:
    return Retriever(store, embedder, clock=lambda: NOW, **kwargs)


def test_hybrid_finds_items_that_only_one_signal_finds(
    store: SqliteMemoryStore, embedder: Any
) -> None:
    by_words = remember(store, embedder, "invoice JX4471 paid")
    by_meaning = remember(store, embedder, "alpha beta gamma delta")

    class MeaningOnly:
        """Maps the query onto 'by_meaning' although they share no word."""

        name, dim = "meaning", embedder.dim

        def embed(self, texts: Sequence[str]) -> list[list[float]]:
            vectors: list[list[float]] = embedder.embed(["alpha beta gamma delta" for _ in texts])
            return vectors

    result = retriever_for(store, MeaningOnly()).search("JX4471", top_k=2, scope=LOCAL)

    found = {hit.item.id: hit for hit in result.hits}
    assert set(found) == {by_words, by_meaning}
    assert found[by_words].lexical_rank == 1
    assert found[by_meaning].vector_rank == 1 and found[by_meaning].lexical_rank is None
    assert result.warning is None and result.elapsed_s >= 0


def test_recency_half_life_decides_between_equally_relevant_memories(
    store: SqliteMemoryStore, embedder: Any
) -> None:
    old = remember(store, embedder, "the boiler is broken", age_days=60)
    new = remember(store, embedder, "the boiler is broken", age_days=1)

    def scores(half_life_days: float) -> dict[str, float]:
        recency = RecencyBias(half_life_days=half_life_days, weight=0.5)
        result = retriever_for(store, embedder, recency=recency).search(
            "boiler broken", scope=LOCAL
        )
        return {hit.item.id: hit.score for hit in result.hits}

    # Without the bias they tie; with it, the newer is ahead.
    assert scores(0)[old] == scores(0)[new]
    with_bias = scores(7)
    assert list(with_bias) == [new, old] and with_bias[new] > with_bias[old]


def test_a_short_half_life_lets_a_recent_memory_overtake_a_better_match(
    store: SqliteMemoryStore, embedder: Any
) -> None:
    better_old = remember(store, embedder, "boiler broken again no hot water", age_days=90)
    weaker_new = remember(store, embedder, "boiler serviced", age_days=0)

    def top(recency: RecencyBias) -> str:
        hits = (
            retriever_for(store, embedder, recency=recency)
            .search("boiler broken hot water", scope=LOCAL)
            .hits
        )
        return hits[0].item.id

    assert top(RecencyBias(half_life_days=0)) == better_old
    assert top(RecencyBias()) == better_old  # the default is a bias, not a filter
    assert top(RecencyBias(half_life_days=3650, weight=0.3)) == better_old
    assert top(RecencyBias(half_life_days=7, weight=0.9)) == weaker_new


def test_filters_and_top_k_limit_the_hits(store: SqliteMemoryStore, embedder: Any) -> None:
    for n in range(6):
        remember(store, embedder, f"deadline talk {n}", speaker="Sarah" if n % 2 else "Tom")

    result = retriever_for(store, embedder).search(
        "deadline", SearchFilters(speaker="Sarah"), top_k=2, scope=LOCAL
    )

    assert len(result.hits) == 2
    assert {hit.item.speaker for hit in result.hits} == {"Sarah"}


def test_without_an_embedder_search_is_lexical(tmp_path: Path) -> None:
    store = SqliteMemoryStore(tmp_path / "m.sqlite3", embedding_dim=None)
    now = datetime.now(UTC)
    store.add(
        [
            MemoryRecord(
                MemoryItem(new_memory_id(), "milk and eggs", "note", now, now, owner="local")
            )
        ]
    )

    result = Retriever(store, embedder=None).search("eggs", scope=LOCAL)

    assert [hit.item.text for hit in result.hits] == ["milk and eggs"]
    assert result.hits[0].vector_rank is None and result.warning is None
    store.close()


def test_a_failing_embedder_degrades_to_lexical_with_a_warning(
    store: SqliteMemoryStore, embedder: Any
) -> None:
    remember(store, embedder, "quarterly report due friday")

    class Broken:
        name, dim = "broken", embedder.dim

        def embed(self, texts: Sequence[str]) -> list[list[float]]:
            raise RuntimeError("model crashed")

    result = retriever_for(store, Broken()).search("report", scope=LOCAL)

    assert [hit.item.text for hit in result.hits] == ["quarterly report due friday"]
    assert result.warning is not None and "lexical" in result.warning
