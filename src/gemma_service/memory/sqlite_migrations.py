"""Numbered schema steps for the SQLite memory store, applied in order when a file opens.

The version lives in ``memory_meta`` ('schema_version'; a file without it is version 1, the
original layout with an FTS5 index over the text alone)."""

from __future__ import annotations

import sqlite3

# What a memory is about besides its words: speaker, emotion, source, conversation and the
# metadata (as JSON text), so that a question naming any of them finds the memory by words.
_ABOUT = (
    "coalesce({row}.speaker, '') || ' ' || coalesce({row}.emotion, '') || ' ' || "
    "coalesce({row}.source, '') || ' ' || coalesce({row}.conversation_id, '') || ' ' || "
    "{row}.metadata"
)

# Version 2: the word index covers the metadata too (column `about`, weighted below the text),
# and deletions are counted so an in-memory copy of the vectors can tell it is stale.
_TO_VERSION_2 = f"""
DROP TRIGGER IF EXISTS memory_items_fts_insert;
DROP TRIGGER IF EXISTS memory_items_delete;
DROP TABLE IF EXISTS memory_fts;
CREATE VIRTUAL TABLE memory_search USING fts5(
    text, about, tokenize='porter unicode61 remove_diacritics 2'
);
INSERT INTO memory_search (rowid, text, about)
    SELECT i.rowid, i.text, {_ABOUT.format(row="i")} FROM memory_items i;
CREATE TRIGGER memory_items_search_insert AFTER INSERT ON memory_items BEGIN
    INSERT INTO memory_search (rowid, text, about)
    VALUES (new.rowid, new.text, {_ABOUT.format(row="new")});
END;
INSERT OR IGNORE INTO memory_meta (key, value) VALUES ('deletions', '0');
CREATE TRIGGER memory_items_delete AFTER DELETE ON memory_items BEGIN
    DELETE FROM memory_search WHERE rowid = old.rowid;
    DELETE FROM memory_embeddings WHERE rowid = old.rowid;
    UPDATE memory_meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'deletions';
END;
"""

MIGRATIONS: tuple[tuple[int, str], ...] = ((2, _TO_VERSION_2),)
LATEST_VERSION = MIGRATIONS[-1][0]


def schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM memory_meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 1


def migrate(tx: sqlite3.Connection) -> None:
    """Bring the schema to the latest version inside the caller's write transaction."""
    current = schema_version(tx)
    for version, script in MIGRATIONS:
        if version <= current:
            continue
        for statement in _statements(script):
            tx.execute(statement)
        tx.execute(
            "INSERT INTO memory_meta (key, value) VALUES ('schema_version', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(version),),
        )


def _statements(script: str) -> list[str]:
    """Split a script into statements; a trigger body's inner semicolons stay with it."""
    statements, pending = [], ""
    for line in script.strip().splitlines():
        pending += line + "\n"
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip():
        statements.append(pending.strip())
    return statements
