"""Owner scoping in both stores (a real SQLite file, a real PostgreSQL + pgvector): another
owner's items are never returned, counted as found, or deleted."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
import pytest

from gemma_service.memory.models import MemoryItem, MemoryRecord, SearchFilters, new_memory_id
from gemma_service.memory.owners import OwnerScope
from gemma_service.memory.postgres_store import PostgresMemoryStore
from gemma_service.memory.store import MemoryStore

StoreFactory = Callable[[int | None], MemoryStore]
ALICE, BOB = OwnerScope("alice"), OwnerScope("bob")
EVERYONE = OwnerScope("ops", every_owner=True)
T0 = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)


def record(owner: str, text: str, vector: list[float], **fields: object) -> MemoryRecord:
    item = MemoryItem(
        id=new_memory_id(),
        text=text,
        kind="note",
        timestamp=T0,
        created_at=T0,
        owner=owner,
        **fields,  # type: ignore[arg-type]
    )
    return MemoryRecord(item, vector)


def test_every_read_keeps_to_the_owner(store_factory: StoreFactory) -> None:
    store = store_factory(2)
    mine = record("alice", "alice budget review on Friday", [1.0, 0.0], speaker="Sam")
    theirs = record("bob", "bob budget review on Monday", [1.0, 0.1], speaker="Sam")
    store.add([mine, theirs])
    alice_id, bob_id = mine.item.id, theirs.item.id

    assert store.get(bob_id, scope=ALICE) is None
    assert store.get(alice_id, scope=ALICE) == mine.item
    assert set(store.get_many([alice_id, bob_id], scope=ALICE)) == {alice_id}
    for filters in (SearchFilters(), SearchFilters(speaker="Sam"), SearchFilters(since=T0)):
        assert [r.id for r in store.lexical_search("budget", filters, 10, scope=ALICE)] == [
            alice_id
        ]
        assert [r.id for r in store.vector_search([1.0, 0.1], filters, 10, scope=ALICE)] == [
            alice_id
        ]
    assert store.delete(bob_id, scope=ALICE) is False
    assert store.get(bob_id, scope=BOB) == theirs.item  # still there for its owner


def test_an_every_owner_scope_reads_them_all(store_factory: StoreFactory) -> None:
    store = store_factory(2)
    records = [record(o, f"{o} budget", [1.0, 0.0]) for o in ("alice", "bob")]
    store.add(records)
    ids = {r.item.id for r in records}

    assert {
        r.id for r in store.lexical_search("budget", SearchFilters(), 10, scope=EVERYONE)
    } == ids
    assert set(store.get_many(list(ids), scope=EVERYONE)) == ids
    assert {store.get(i, scope=EVERYONE).owner for i in ids} == {"alice", "bob"}  # type: ignore[union-attr]


def test_an_owners_vector_search_fills_its_limit_when_others_are_nearer(
    store_factory: StoreFactory,
) -> None:
    store = store_factory(2)
    crowd = [record("crowd", f"crowd {i}", [1.0, i / 10_000]) for i in range(2000)]
    sarah = [record("sarah", f"sarah {i}", [i / 10_000, 1.0]) for i in range(2000)]
    store.add(crowd + sarah)
    if isinstance(store, PostgresMemoryStore):
        # With statistics, PostgreSQL walks the HNSW index for an owner with half the rows; the
        # index's nearest 40 are all the crowd's, which the owner condition then drops.
        with psycopg.connect(store.url, autocommit=True) as conn:
            conn.execute("ANALYZE memory_items")

    found = store.vector_search([1.0, 0.0], SearchFilters(), 5, scope=OwnerScope("sarah"))

    assert [r.id for r in found] == [r.item.id for r in sarah[-5:][::-1]]


def test_an_item_without_an_owner_is_refused(store_factory: StoreFactory) -> None:
    store = store_factory(2)
    orphan = MemoryItem(id=new_memory_id(), text="x", kind="note", timestamp=T0, created_at=T0)
    with pytest.raises(ValueError, match="no owner"):
        store.add([MemoryRecord(orphan, [1.0, 0.0])])
    assert store.count() == 0
