"""Stores as this service wrote them before owners existed, written by hand for the migration
tests: the memory store (SQLite, PostgreSQL) and the conversations file."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import psycopg

from gemma_service.memory.sqlite_vectors import float32_blob

OLD_ID = "mem_0123456789abcdef0123456789abcdef"

SQLITE_BEFORE_OWNERS = """
CREATE TABLE memory_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE memory_items (
    rowid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, text TEXT NOT NULL, kind TEXT NOT NULL,
    speaker TEXT, ts_us INTEGER NOT NULL, emotion TEXT, source TEXT, conversation_id TEXT,
    metadata TEXT NOT NULL, parent_id TEXT, chunk_index INTEGER NOT NULL,
    chunk_count INTEGER NOT NULL, created_us INTEGER NOT NULL
);
CREATE INDEX memory_items_ts ON memory_items (ts_us);
CREATE INDEX memory_items_speaker ON memory_items (speaker);
CREATE INDEX memory_items_conversation ON memory_items (conversation_id);
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
INSERT INTO memory_meta VALUES ('embedding_dim', '2');
"""
POSTGRES_BEFORE_OWNERS = (
    "CREATE EXTENSION IF NOT EXISTS vector",
    "CREATE TABLE memory_meta (key text PRIMARY KEY, value text NOT NULL)",
    """CREATE TABLE memory_items (
        id text PRIMARY KEY, text text NOT NULL, kind text NOT NULL, speaker text,
        ts timestamptz NOT NULL, emotion text, source text, conversation_id text,
        metadata jsonb NOT NULL, parent_id text, chunk_index integer NOT NULL,
        chunk_count integer NOT NULL, created_at timestamptz NOT NULL,
        tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED,
        embedding vector(2)
    )""",
    "CREATE INDEX memory_items_tsv ON memory_items USING gin (tsv)",
    "CREATE INDEX memory_items_embedding ON memory_items USING hnsw (embedding vector_cosine_ops)",
    "INSERT INTO memory_meta VALUES ('embedding_dim', '2')",
)
CONVERSATIONS_BEFORE_OWNERS = """
CREATE TABLE conversation_messages (
    conversation_id TEXT NOT NULL, seq INTEGER NOT NULL, role TEXT NOT NULL,
    content TEXT NOT NULL, is_summary INTEGER NOT NULL DEFAULT 0, created_us INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);
INSERT INTO conversation_messages VALUES ('trip', 1, 'user', 'My cabin is 4471.', 0, 1);
INSERT INTO conversation_messages VALUES ('trip', 2, 'assistant', 'Noted: 4471.', 0, 2);
"""


def sqlite_before_owners(path: Path) -> None:
    with closing(sqlite3.connect(path)) as db:
        db.executescript(SQLITE_BEFORE_OWNERS)
        db.execute(
            "INSERT INTO memory_items (id, text, kind, speaker, ts_us, metadata, chunk_index, "
            "chunk_count, created_us) VALUES (?, 'the old budget review notes', 'note', 'Sam', "
            "0, '{}', 0, 1, 0)",
            (OLD_ID,),
        )
        db.execute("INSERT INTO memory_embeddings VALUES (1, ?)", (float32_blob([1.0, 0.0]),))
        db.commit()


def postgres_before_owners(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as db:
        for statement in POSTGRES_BEFORE_OWNERS:
            db.execute(statement)
        db.execute(
            "INSERT INTO memory_items (id, text, kind, speaker, ts, metadata, chunk_index, "
            "chunk_count, created_at, embedding) VALUES (%s, 'the old budget review notes', "
            "'note', 'Sam', now(), '{}', 0, 1, now(), '[1,0]')",
            (OLD_ID,),
        )


def conversations_before_owners(path: Path) -> None:
    with closing(sqlite3.connect(path)) as db:
        db.executescript(CONVERSATIONS_BEFORE_OWNERS)
