"""The MemoryStore contract, run against a real SQLite file and a real PostgreSQL + pgvector."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gemma_service.memory.models import MemoryItem, MemoryRecord, SearchFilters, new_memory_id
from gemma_service.memory.owners import OwnerScope
from gemma_service.memory.store import EmbeddingDimensionMismatchError, MemoryStore

LOCAL = OwnerScope.local()

StoreFactory = Callable[[int | None], MemoryStore]

T0 = datetime(2024, 5, 1, 9, 30, 15, 123456, tzinfo=UTC)
NO_FILTERS = SearchFilters()


def item(text: str, **fields: object) -> MemoryItem:
    values: dict[str, object] = {
        "id": new_memory_id(),
        "text": text,
        "kind": "transcript",
        "timestamp": T0,
        "created_at": T0,
        "owner": "local",
    }
    values.update(fields)
    return MemoryItem(**values)  # type: ignore[arg-type]


def test_items_round_trip_with_every_field_and_survive_reopening(
    store_factory: StoreFactory,
) -> None:
    original = item(
        "Sarah: the report is due Friday — ça va? 🚀",
        kind="document",
        speaker="Sarah",
        timestamp=T0 + timedelta(hours=3),
        emotion="stressed",
        source="meeting-2024-05-01.wav",
        conversation_id="conv-7",
        metadata={"segment": 12, "tags": ["work", "deadline"], "nested": {"ok": True}},
        parent_id="doc_1",
        chunk_index=2,
        chunk_count=5,
    )
    store = store_factory(3)
    assert store.add([MemoryRecord(original, [0.1, 0.2, 0.3])]) == [original.id]
    store.close()

    reopened = store_factory(3)
    assert reopened.get(original.id, scope=LOCAL) == original
    assert reopened.count() == 1
    assert reopened.get("mem_missing", scope=LOCAL) is None


def test_a_batch_is_stored_all_or_nothing(store_factory: StoreFactory) -> None:
    store = store_factory(2)
    kept = item("first")
    store.add([MemoryRecord(kept, [1.0, 0.0])])
    duplicate = item("second", id=kept.id)
    with pytest.raises(Exception):  # noqa: B017 - each backend raises its own integrity error
        store.add([MemoryRecord(item("would be lost"), [0.0, 1.0]), MemoryRecord(duplicate)])
    assert store.count() == 1
    with pytest.raises(ValueError, match="3 values"):
        store.add([MemoryRecord(item("wrong size"), [1.0, 0.0, 0.0])])
    assert store.count() == 1


def test_delete_removes_an_item_from_get_and_both_searches(store_factory: StoreFactory) -> None:
    store = store_factory(2)
    doomed, other = item("budget meeting notes"), item("budget forecast")
    store.add([MemoryRecord(doomed, [1.0, 0.0]), MemoryRecord(other, [0.9, 0.1])])

    assert store.delete(doomed.id, scope=LOCAL) is True
    assert store.delete(doomed.id, scope=LOCAL) is False
    assert store.get(doomed.id, scope=LOCAL) is None
    assert [r.id for r in store.lexical_search("budget", NO_FILTERS, 10, scope=LOCAL)] == [other.id]
    assert [r.id for r in store.vector_search([1.0, 0.0], NO_FILTERS, 10, scope=LOCAL)] == [
        other.id
    ]


def test_lexical_search_ranks_matches_and_understands_word_forms(
    store_factory: StoreFactory,
) -> None:
    store = store_factory(None)
    both = item("The quarterly budget meeting moved to Friday.")
    one = item("Budgets are tight this year.")
    unrelated = item("We adopted a kitten.")
    store.add([MemoryRecord(x) for x in (unrelated, one, both)])

    results = store.lexical_search("budget meetings", NO_FILTERS, 10, scope=LOCAL)

    assert [r.id for r in results] == [both.id, one.id]
    assert [r.rank for r in results] == [1, 2]
    assert results[0].score > results[1].score


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (SearchFilters(speaker="Sarah"), {"sarah-old", "sarah-new"}),
        (SearchFilters(kind="note"), {"tom-note"}),
        (SearchFilters(conversation_id="c2"), {"sarah-new", "tom-note"}),
        (SearchFilters(since=T0 + timedelta(days=1)), {"sarah-new", "tom-note"}),
        (SearchFilters(until=T0), {"sarah-old"}),
        (SearchFilters(speaker="Sarah", since=T0 + timedelta(hours=1)), {"sarah-new"}),
        (SearchFilters(speaker="Nobody"), set()),
    ],
)
def test_filters_restrict_both_searches(
    store_factory: StoreFactory, filters: SearchFilters, expected: set[str]
) -> None:
    store = store_factory(2)
    items = {
        "sarah-old": item("project deadline", speaker="Sarah", conversation_id="c1"),
        "sarah-new": item(
            "project deadline moved",
            speaker="Sarah",
            conversation_id="c2",
            timestamp=T0 + timedelta(days=2),
        ),
        "tom-note": item(
            "project deadline note",
            speaker="Tom",
            kind="note",
            conversation_id="c2",
            timestamp=T0 + timedelta(days=3),
        ),
    }
    store.add([MemoryRecord(x, [1.0, float(i)]) for i, x in enumerate(items.values())])
    names = {x.id: name for name, x in items.items()}

    lexical = store.lexical_search("project deadline", filters, 10, scope=LOCAL)
    vector = store.vector_search([1.0, 0.5], filters, 10, scope=LOCAL)

    assert {names[r.id] for r in lexical} == expected
    assert {names[r.id] for r in vector} == expected


def test_vector_search_orders_by_cosine_similarity(store_factory: StoreFactory) -> None:
    store = store_factory(3)
    near, middle, far = item("near"), item("middle"), item("far")
    no_vector = item("near but never embedded")
    store.add(
        [
            MemoryRecord(far, [-1.0, 0.0, 0.0]),
            MemoryRecord(near, [2.0, 0.1, 0.0]),  # length must not matter, only direction
            MemoryRecord(middle, [1.0, 1.0, 0.0]),
            MemoryRecord(no_vector),
        ]
    )

    results = store.vector_search([1.0, 0.0, 0.0], NO_FILTERS, 10, scope=LOCAL)

    assert [r.id for r in results] == [near.id, middle.id, far.id]
    assert results[0].score == pytest.approx(0.99875, abs=1e-4)
    assert results[1].score == pytest.approx(0.70711, abs=1e-4)
    assert results[2].score == pytest.approx(-1.0, abs=1e-4)
    assert [r.id for r in store.vector_search([1.0, 0.0, 0.0], NO_FILTERS, 1, scope=LOCAL)] == [
        near.id
    ]


def test_filtered_vector_search_still_fills_the_limit(store_factory: StoreFactory) -> None:
    store = store_factory(2)
    crowd = [MemoryRecord(item(f"tom {i}", speaker="Tom"), [1.0, 0.0]) for i in range(30)]
    sarah = [MemoryRecord(item(f"sarah {i}", speaker="Sarah"), [0.0, 1.0]) for i in range(5)]
    store.add(crowd + sarah)

    results = store.vector_search([1.0, 0.0], SearchFilters(speaker="Sarah"), 5, scope=LOCAL)

    assert {r.id for r in results} == {r.item.id for r in sarah}


def test_embedding_size_is_fixed_when_first_set(store_factory: StoreFactory) -> None:
    store_factory(4).close()
    with pytest.raises(EmbeddingDimensionMismatchError, match="4-dimensional"):
        store_factory(8)
    assert store_factory(None).embedding_dim == 4


def test_a_store_without_embeddings_still_stores_and_finds_words(
    store_factory: StoreFactory,
) -> None:
    store = store_factory(None)
    note = item("remember the milk")
    store.add([MemoryRecord(note)])
    assert store.embedding_dim is None
    assert [r.id for r in store.lexical_search("milk", NO_FILTERS, 5, scope=LOCAL)] == [note.id]
    with pytest.raises(ValueError):
        store.vector_search([1.0], NO_FILTERS, 5, scope=LOCAL)


@pytest.mark.parametrize(
    "query",
    [
        'AND OR NOT "unbalanced (paren*',
        "NEAR(a b",
        "text:col ^start",
        "'; DROP TABLE x; --",
        "-minus +plus",
        "*",
        "",
        "   ",
        "!!! ???",
        "a | b & !c <-> d",
        "😀 emoji",
    ],
)
def test_query_syntax_in_user_text_is_never_an_error(
    store_factory: StoreFactory, query: str
) -> None:
    store = store_factory(None)
    table = item("DROP TABLE plus minus start col paren unbalanced emoji")
    store.add([MemoryRecord(table)])
    results = store.lexical_search(query, NO_FILTERS, 5, scope=LOCAL)
    assert all(r.id == table.id for r in results)


@pytest.fixture
def lexical_store(store_factory: StoreFactory) -> MemoryStore:
    store = store_factory(None)
    store.add([MemoryRecord(item("a few ordinary words to match against"))])
    return store


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(query=st.text(max_size=40))
def test_any_text_is_a_valid_lexical_query(lexical_store: MemoryStore, query: str) -> None:
    results = lexical_store.lexical_search(query, NO_FILTERS, 3, scope=LOCAL)
    assert len(results) <= 1
