"""Numbered schema steps for the PostgreSQL memory store, applied in order at start-up (under
the store's advisory lock). The version lives in ``memory_meta`` ('schema_version'; a database
without it is version 1, whose word index covered the text alone)."""

from __future__ import annotations

from typing import Any

# Version 2: the word index also covers what a memory is about (speaker, emotion, source,
# conversation, metadata) at weight D, below the text's A; ts_rank weighs them (store.py).
_TO_VERSION_2 = (
    "ALTER TABLE memory_items DROP COLUMN IF EXISTS tsv",
    "ALTER TABLE memory_items ADD COLUMN tsv tsvector GENERATED ALWAYS AS ("
    "setweight(to_tsvector('english', text), 'A') || "
    "setweight(to_tsvector('english', coalesce(speaker, '') || ' ' || coalesce(emotion, '') "
    "|| ' ' || coalesce(source, '') || ' ' || coalesce(conversation_id, '') || ' ' "
    "|| metadata::text), 'D')) STORED",
    "CREATE INDEX memory_items_tsv ON memory_items USING gin (tsv)",
)

MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = ((2, _TO_VERSION_2),)
LATEST_VERSION = MIGRATIONS[-1][0]


def schema_version(conn: Any) -> int:
    row = conn.execute("SELECT value FROM memory_meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 1


def migrate(conn: Any) -> None:
    """Bring the schema to the latest version inside the caller's transaction."""
    current = schema_version(conn)
    for version, statements in MIGRATIONS:
        if version <= current:
            continue
        for statement in statements:
            conn.execute(statement)
        conn.execute(
            "INSERT INTO memory_meta (key, value) VALUES ('schema_version', %s) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(version),),
        )
