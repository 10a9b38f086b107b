"""What issue 16 added to the store contract, on SQLite and PostgreSQL: metadata found by
words (text still ranks first), stored vectors read back, the speakers and the newest time,
and the in-memory vector index kept in step with writes and deletions."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from gemma_service.memory.models import MemoryItem, MemoryRecord, SearchFilters, new_memory_id
from gemma_service.memory.owners import LOCAL_OWNER, OwnerScope
from gemma_service.memory.sqlite_migrations import LATEST_VERSION, schema_version
from gemma_service.memory.sqlite_store import SqliteMemoryStore
from gemma_service.memory.store import MemoryStore

StoreFactory = Callable[[int | None], MemoryStore]
T0 = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)
NO_FILTERS = SearchFilters()
LOCAL = OwnerScope.local()


def item(text: str, **fields: object) -> MemoryItem:
    values: dict[str, object] = {
        "id": new_memory_id(),
        "text": text,
        "kind": "transcript",
        "timestamp": T0,
        "created_at": T0,
        "owner": LOCAL_OWNER,
    }
    values.update(fields)
    return MemoryItem(**values)  # type: ignore[arg-type]


def test_speaker_emotion_source_and_metadata_are_found_by_words(
    store_factory: StoreFactory,
) -> None:
    store = store_factory(None)
    by_lena = item("We cut the campaign money.", speaker="Lena", emotion="worried")
    at_review = item("Hosting went up again.", source="Budget review")
    tagged = item("Porto it is.", metadata={"meeting": "Offsite planning"})
    store.add([MemoryRecord(x) for x in (by_lena, at_review, tagged)])

    def found(query: str) -> list[str]:
        return [r.id for r in store.lexical_search(query, NO_FILTERS, 5, scope=LOCAL)]

    assert found("Lena") == [by_lena.id]
    assert found("worried") == [by_lena.id]
    assert found("budget review") == [at_review.id]
    assert found("offsite") == [tagged.id]


def test_a_word_in_the_text_outranks_the_same_word_in_the_metadata(
    store_factory: StoreFactory,
) -> None:
    store = store_factory(None)
    in_metadata = item("Hosting went up again.", source="Budget review")
    in_text = item("The budget for hosting went up again.")
    store.add([MemoryRecord(in_metadata), MemoryRecord(in_text)])
    assert [r.id for r in store.lexical_search("budget", NO_FILTERS, 5, scope=LOCAL)] == [
        in_text.id,
        in_metadata.id,
    ]


def test_stored_vectors_speakers_and_newest_time(store_factory: StoreFactory) -> None:
    store = store_factory(2)
    assert store.speakers(scope=LOCAL) == [] and store.newest_timestamp(scope=LOCAL) is None
    first = item("one", speaker="Sarah")
    last = item("two", speaker="Tom", timestamp=T0 + timedelta(days=9))
    plain = item("three")
    store.add(
        [MemoryRecord(first, [3.0, 4.0]), MemoryRecord(last, [0.0, 1.0]), MemoryRecord(plain)]
    )

    vectors = store.embeddings_of([first.id, last.id, plain.id, "mem_missing"])
    assert set(vectors) == {first.id, last.id}  # no vector, or no such item: absent
    assert np.allclose(vectors[first.id], [3.0, 4.0])
    assert sorted(store.speakers(scope=LOCAL)) == ["Sarah", "Tom"]
    assert store.newest_timestamp(scope=LOCAL) == T0 + timedelta(days=9)
    # Another owner's people and times are not this owner's.
    store.add(
        [
            MemoryRecord(
                item("four", speaker="Mallory", owner="other", timestamp=T0 + timedelta(days=30))
            )
        ]
    )
    assert sorted(store.speakers(scope=LOCAL)) == ["Sarah", "Tom"]
    assert store.newest_timestamp(scope=LOCAL) == T0 + timedelta(days=9)
    assert store.speakers(scope=OwnerScope("other")) == ["Mallory"]


def test_the_vector_index_sees_writes_and_deletions_of_another_handle(
    store_factory: StoreFactory,
) -> None:
    reader, writer = store_factory(2), store_factory(2)
    a, b = item("a"), item("b")
    writer.add([MemoryRecord(a, [1.0, 0.0])])
    assert [r.id for r in reader.vector_search([1.0, 0.0], NO_FILTERS, 5, scope=LOCAL)] == [a.id]

    writer.add([MemoryRecord(b, [1.0, 0.1])])
    assert [r.id for r in reader.vector_search([1.0, 0.0], NO_FILTERS, 5, scope=LOCAL)] == [
        a.id,
        b.id,
    ]

    writer.delete(a.id, scope=LOCAL)
    c = item("c")
    writer.add([MemoryRecord(c, [0.0, 1.0])])
    assert [r.id for r in reader.vector_search([1.0, 0.0], NO_FILTERS, 5, scope=LOCAL)] == [
        b.id,
        c.id,
    ]


_VERSION_1_SCHEMA = """
CREATE TABLE memory_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE memory_items (
    rowid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, text TEXT NOT NULL, kind TEXT NOT NULL,
    speaker TEXT, ts_us INTEGER NOT NULL, emotion TEXT, source TEXT, conversation_id TEXT,
    metadata TEXT NOT NULL, parent_id TEXT, chunk_index INTEGER NOT NULL,
    chunk_count INTEGER NOT NULL, created_us INTEGER NOT NULL
);
CREATE VIRTUAL TABLE memory_fts USING fts5(
    text, content='memory_items', content_rowid='rowid',
    tokenize='porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER memory_items_fts_insert AFTER INSERT ON memory_items BEGIN
    INSERT INTO memory_fts (rowid, text) VALUES (new.rowid, new.text);
END;
CREATE TABLE memory_embeddings (rowid INTEGER PRIMARY KEY, embedding BLOB NOT NULL);
CREATE TRIGGER memory_items_delete AFTER DELETE ON memory_items BEGIN
    INSERT INTO memory_fts (memory_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
    DELETE FROM memory_embeddings WHERE rowid = old.rowid;
END;
INSERT INTO memory_items VALUES
    (1, 'mem_old', 'the boiler is broken', 'note', 'Sarah', 0, NULL, 'Home', NULL, '{}',
     NULL, 0, 1, 0);
"""


def test_a_version_1_file_is_migrated_and_its_items_found(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(_VERSION_1_SCHEMA)

    store = SqliteMemoryStore(path, embedding_dim=None)
    try:
        assert [r.id for r in store.lexical_search("boiler", NO_FILTERS, 5, scope=LOCAL)] == [
            "mem_old"
        ]
        assert [r.id for r in store.lexical_search("home", NO_FILTERS, 5, scope=LOCAL)] == [
            "mem_old"
        ]
        assert store.delete("mem_old", scope=LOCAL)
        assert store.lexical_search("boiler", NO_FILTERS, 5, scope=LOCAL) == []
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        assert schema_version(conn) == LATEST_VERSION
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert "memory_fts" not in tables


@pytest.mark.parametrize("backend", ["postgres"])
def test_a_version_1_database_is_migrated(backend: str, postgres_url: str) -> None:
    import psycopg

    from gemma_service.memory.postgres_store import PostgresMemoryStore

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE memory_meta (key text PRIMARY KEY, value text NOT NULL);"
            "CREATE TABLE memory_items (id text PRIMARY KEY, text text NOT NULL, kind text NOT "
            "NULL, speaker text, ts timestamptz NOT NULL, emotion text, source text, "
            "conversation_id text, metadata jsonb NOT NULL, parent_id text, chunk_index integer "
            "NOT NULL, chunk_count integer NOT NULL, created_at timestamptz NOT NULL, tsv "
            "tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED);"
            "INSERT INTO memory_items VALUES ('mem_old', 'the boiler is broken', 'note', 'Sarah',"
            " now(), NULL, 'Home', NULL, '{}', NULL, 0, 1, now())"
        )
    store = PostgresMemoryStore(postgres_url, embedding_dim=None)
    try:
        assert [r.id for r in store.lexical_search("boiler", NO_FILTERS, 5, scope=LOCAL)] == [
            "mem_old"
        ]
        assert [r.id for r in store.lexical_search("home", NO_FILTERS, 5, scope=LOCAL)] == [
            "mem_old"
        ]
    finally:
        store.close()
