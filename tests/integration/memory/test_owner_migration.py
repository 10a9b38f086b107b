"""Stores made before owners existed (the layouts as shipped then, written here by hand): the
first opening gives every row to GEMMA_LEGACY_OWNER, later openings move nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gemma_service.memory.conversations import ConversationStore
from gemma_service.memory.models import MemoryItem, MemoryRecord, SearchFilters, new_memory_id
from gemma_service.memory.owners import OwnerScope
from gemma_service.memory.postgres_store import PostgresMemoryStore
from gemma_service.memory.sqlite_store import SqliteMemoryStore
from gemma_service.memory.store import MemoryStore

from .legacy_stores import (
    OLD_ID,
    conversations_before_owners,
    postgres_before_owners,
    sqlite_before_owners,
)

ALICE, BOB, LOCAL = OwnerScope("alice"), OwnerScope("bob"), OwnerScope.local()


@dataclass
class LegacyStore:
    """A store location holding one memory from before owners; opens it with this version."""

    open: Callable[[str], MemoryStore]


@pytest.fixture(params=["sqlite", "postgres"])
def legacy(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LegacyStore]:
    opened: list[MemoryStore] = []

    def open_store(legacy_owner: str) -> MemoryStore:
        store: MemoryStore
        if request.param == "sqlite":
            store = SqliteMemoryStore(tmp_path / "memory.sqlite3", 2, legacy_owner=legacy_owner)
        else:
            store = PostgresMemoryStore(url, 2, legacy_owner=legacy_owner)
        opened.append(store)
        return store

    if request.param == "sqlite":
        sqlite_before_owners(tmp_path / "memory.sqlite3")
    else:
        url = request.getfixturevalue("postgres_url")
        postgres_before_owners(url)
    yield LegacyStore(open_store)
    for store in opened:
        store.close()


def test_memories_from_before_owners_go_to_the_configured_owner(legacy: LegacyStore) -> None:
    store = legacy.open("alice")

    old = store.get(OLD_ID, scope=ALICE)
    assert old is not None and old.owner == "alice" and old.speaker == "Sam"
    assert store.get(OLD_ID, scope=LOCAL) is None and store.get(OLD_ID, scope=BOB) is None
    assert [r.id for r in store.lexical_search("budget", SearchFilters(), 5, scope=ALICE)] == [
        OLD_ID
    ]
    assert [r.id for r in store.vector_search([1.0, 0.1], SearchFilters(), 5, scope=ALICE)] == [
        OLD_ID
    ]
    assert store.lexical_search("budget", SearchFilters(), 5, scope=BOB) == []


def test_a_later_opening_moves_nothing_and_new_memories_keep_their_owners(
    legacy: LegacyStore,
) -> None:
    store = legacy.open("alice")
    now = datetime.now(UTC)
    new = MemoryItem(new_memory_id(), "bob's budget", "note", now, now, owner="bob")
    store.add([MemoryRecord(new, [1.0, 0.0])])
    store.close()

    reopened = legacy.open("carol")

    assert reopened.get(OLD_ID, scope=ALICE) is not None
    assert reopened.get(new.id, scope=BOB) == new
    assert reopened.lexical_search("budget", SearchFilters(), 5, scope=OwnerScope("carol")) == []


def test_conversations_from_before_owners_go_to_the_configured_owner(tmp_path: Path) -> None:
    path = tmp_path / "conversations.sqlite3"
    conversations_before_owners(path)

    store = ConversationStore(path, legacy_owner="alice")
    assert [m.content for m in store.load("trip", owner="alice")] == [
        "My cabin is 4471.",
        "Noted: 4471.",
    ]
    assert store.load("trip", owner="local") == []
    store.append("trip", "user", "Which deck?", owner="alice")
    store.append("trip", "user", "bob's own trip", owner="bob")
    store.close()

    reopened = ConversationStore(path, legacy_owner="carol")
    assert len(reopened.load("trip", owner="alice")) == 3
    assert [m.content for m in reopened.load("trip", owner="bob")] == ["bob's own trip"]
    assert reopened.load("trip", owner="carol") == []
    reopened.close()
