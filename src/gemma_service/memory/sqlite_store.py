"""The embedded memory store: one SQLite file in WAL mode, FTS5 for words, cosine for vectors."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from gemma_service.memory.models import MemoryItem, MemoryRecord, RankedId, SearchFilters
from gemma_service.memory.owner_columns import add_owner_column_sqlite
from gemma_service.memory.owners import LOCAL_OWNER, OwnerScope
from gemma_service.memory.sqlite_connections import SqliteConnections
from gemma_service.memory.sqlite_migrations import migrate
from gemma_service.memory.sqlite_vector_index import SqliteVectorIndex
from gemma_service.memory.sqlite_vectors import (
    VectorEngine,
    float32_blob,
    nearest_with_sqlite_vec,
    resolve_vector_engine,
    try_load_sqlite_vec,
)
from gemma_service.memory.store import (
    ABOUT_WEIGHT,
    EmbeddingDimensionMismatchError,
    FloatVector,
    check_embedding,
    lexical_terms,
    require_owners,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS memory_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS memory_items (
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    text TEXT NOT NULL,
    kind TEXT NOT NULL,
    speaker TEXT,
    ts_us INTEGER NOT NULL,
    emotion TEXT,
    source TEXT,
    conversation_id TEXT,
    metadata TEXT NOT NULL,
    parent_id TEXT,
    chunk_index INTEGER NOT NULL,
    chunk_count INTEGER NOT NULL,
    created_us INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS memory_items_ts ON memory_items (ts_us);
CREATE INDEX IF NOT EXISTS memory_items_speaker ON memory_items (speaker);
CREATE INDEX IF NOT EXISTS memory_items_conversation ON memory_items (conversation_id);
CREATE TABLE IF NOT EXISTS memory_embeddings (
    rowid INTEGER PRIMARY KEY,
    embedding BLOB NOT NULL
);
"""
_ITEM_COLUMNS = (
    "i.id, i.text, i.kind, i.speaker, i.ts_us, i.emotion, i.source, i.conversation_id, "
    "i.metadata, i.parent_id, i.chunk_index, i.chunk_count, i.created_us, i.owner"
)
_SQL_VARIABLES_PER_QUERY = 500
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(moment: datetime) -> int:
    """Microseconds since the epoch, exactly (no float rounding)."""
    return (moment - EPOCH) // timedelta(microseconds=1)


def from_micros(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


def fts_match_expression(query: str) -> str | None:
    """An FTS5 query matching any word of ``query``; every term quoted, so no text is a syntax
    error. None when the text has no words."""
    terms = lexical_terms(query)
    if not terms:
        return None
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)


def filter_clause(filters: SearchFilters, scope: OwnerScope) -> tuple[str, list[Any]]:
    """SQL conditions on ``memory_items i`` for the caller's scope and the set filters (always a
    valid AND term)."""
    owned, owner_params = scope.sql("i.owner")
    conditions, params = [owned], list[Any](owner_params)
    for column, value in (
        ("i.speaker", filters.speaker),
        ("i.kind", filters.kind),
        ("i.conversation_id", filters.conversation_id),
    ):
        if value is not None:
            conditions.append(f"{column} = ?")
            params.append(value)
    if filters.since is not None:
        conditions.append("i.ts_us >= ?")
        params.append(to_micros(filters.since))
    if filters.until is not None:
        conditions.append("i.ts_us <= ?")
        params.append(to_micros(filters.until))
    return " AND ".join(conditions), params


class SqliteMemoryStore:
    """MemoryStore on one SQLite file; one connection per thread, durable commits."""

    def __init__(
        self,
        path: Path,
        embedding_dim: int | None,
        vector_engine: VectorEngine = "auto",
        *,
        legacy_owner: str = LOCAL_OWNER,
    ) -> None:
        self.path = path
        self._sqlite_vec_missing: str | None = None
        self._db = SqliteConnections(path, on_connect=self._load_extensions)
        try:
            self._db.run_script(_SCHEMA)
            with self._db.write() as tx:
                migrate(tx)
                add_owner_column_sqlite(tx, legacy_owner)
            self._embedding_dim = self._settle_embedding_dim(embedding_dim)
            self.vector_engine = resolve_vector_engine(vector_engine, self._sqlite_vec_missing)
            self._vector_index = SqliteVectorIndex(self._embedding_dim or 0)
        except BaseException:
            self._db.close()
            raise

    @property
    def embedding_dim(self) -> int | None:
        return self._embedding_dim

    def _load_extensions(self, conn: sqlite3.Connection) -> None:
        self._sqlite_vec_missing = try_load_sqlite_vec(conn)

    def _settle_embedding_dim(self, embedding_dim: int | None) -> int | None:
        """The size fixed when the first embedder met this file; a different one is an error."""
        with self._db.write() as tx:
            row = tx.execute("SELECT value FROM memory_meta WHERE key = 'embedding_dim'").fetchone()
            stored_dim = int(row[0]) if row else None
            if stored_dim is not None and embedding_dim not in (None, stored_dim):
                raise EmbeddingDimensionMismatchError(
                    stored_dim, embedding_dim or 0, str(self.path)
                )
            if stored_dim is None and embedding_dim is not None:
                tx.execute(
                    "INSERT INTO memory_meta (key, value) VALUES ('embedding_dim', ?)",
                    (str(embedding_dim),),
                )
                stored_dim = embedding_dim
        return stored_dim

    def add(self, records: Sequence[MemoryRecord]) -> list[str]:
        require_owners(records)
        for record in records:
            if record.embedding is not None:
                check_embedding(record.embedding, self._embedding_dim)
        with self._db.write() as tx:
            for record in records:
                self._insert(tx, record)
        return [record.item.id for record in records]

    def _insert(self, tx: sqlite3.Connection, record: MemoryRecord) -> None:
        item = record.item
        cursor = tx.execute(
            "INSERT INTO memory_items (id, text, kind, speaker, ts_us, emotion, source, "
            "conversation_id, metadata, parent_id, chunk_index, chunk_count, created_us, owner) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                item.id,
                item.text,
                item.kind,
                item.speaker,
                to_micros(item.timestamp or item.created_at),
                item.emotion,
                item.source,
                item.conversation_id,
                json.dumps(item.metadata),
                item.parent_id,
                item.chunk_index,
                item.chunk_count,
                to_micros(item.created_at),
                item.owner,
            ),
        )
        if record.embedding is not None:
            tx.execute(
                "INSERT INTO memory_embeddings (rowid, embedding) VALUES (?, ?)",
                (cursor.lastrowid, float32_blob(record.embedding)),
            )

    def get(self, item_id: str, *, scope: OwnerScope) -> MemoryItem | None:
        return self.get_many([item_id], scope=scope).get(item_id)

    def get_many(self, item_ids: Sequence[str], *, scope: OwnerScope) -> dict[str, MemoryItem]:
        conn, found = self._db.connection(), dict[str, MemoryItem]()
        owned, owner_params = scope.sql("i.owner")
        unique_ids = list(dict.fromkeys(item_ids))
        for start in range(0, len(unique_ids), _SQL_VARIABLES_PER_QUERY):
            batch = unique_ids[start : start + _SQL_VARIABLES_PER_QUERY]
            marks = ",".join("?" * len(batch))
            rows = conn.execute(
                f"SELECT {_ITEM_COLUMNS} FROM memory_items i WHERE i.id IN ({marks}) AND {owned}",
                [*batch, *owner_params],
            )
            found.update((row[0], _row_to_item(row)) for row in rows)
        return found

    def delete(self, item_id: str, *, scope: OwnerScope) -> bool:
        owned, owner_params = scope.sql("owner")
        with self._db.write() as tx:
            row = tx.execute(
                f"SELECT rowid FROM memory_items WHERE id = ? AND {owned}",
                [item_id, *owner_params],
            ).fetchone()
            if row is None:
                return False
            tx.execute("DELETE FROM memory_items WHERE rowid = ?", (row[0],))
        return True

    def lexical_search(
        self, query: str, filters: SearchFilters, limit: int, *, scope: OwnerScope
    ) -> list[RankedId]:
        expression = fts_match_expression(query)
        if expression is None or limit <= 0:
            return []
        where, params = filter_clause(filters, scope)
        rows = (
            self._db.connection()
            .execute(
                f"SELECT i.id, bm25(memory_search, 1.0, {ABOUT_WEIGHT}) AS rank "
                "FROM memory_search JOIN memory_items i ON i.rowid = memory_search.rowid "
                f"WHERE memory_search MATCH ? AND {where} ORDER BY rank, i.rowid LIMIT ?",
                [expression, *params, limit],
            )
            .fetchall()
        )
        # bm25() is lower for better matches; report it negated so a higher score is better.
        return [RankedId(row[0], rank, -float(row[1])) for rank, row in enumerate(rows, 1)]

    def vector_search(
        self, embedding: Sequence[float], filters: SearchFilters, limit: int, *, scope: OwnerScope
    ) -> list[RankedId]:
        check_embedding(embedding, self._embedding_dim)
        if limit <= 0:
            return []
        where, params = filter_clause(filters, scope)
        conn = self._db.connection()
        if self.vector_engine == "sqlite-vec":
            found = nearest_with_sqlite_vec(conn, float32_blob(embedding), where, params, limit)
        else:
            self._vector_index.sync(conn)
            allowed = None
            if params:
                rows = conn.execute(f"SELECT i.rowid FROM memory_items i WHERE {where}", params)
                allowed = [row[0] for row in rows]
            query = np.asarray(embedding, dtype=np.float32)
            found = self._vector_index.nearest(query, allowed, limit)
        return [RankedId(item_id, rank, score) for rank, (item_id, score) in enumerate(found, 1)]

    def embeddings_of(self, item_ids: Sequence[str]) -> dict[str, FloatVector]:
        conn, found = self._db.connection(), dict[str, FloatVector]()
        unique_ids = list(dict.fromkeys(item_ids))
        for start in range(0, len(unique_ids), _SQL_VARIABLES_PER_QUERY):
            batch = unique_ids[start : start + _SQL_VARIABLES_PER_QUERY]
            marks = ",".join("?" * len(batch))
            rows = conn.execute(
                "SELECT i.id, e.embedding FROM memory_items i "
                f"JOIN memory_embeddings e ON e.rowid = i.rowid WHERE i.id IN ({marks})",
                batch,
            )
            found.update((row[0], np.frombuffer(row[1], dtype="<f4")) for row in rows)
        return found

    def speakers(self, *, scope: OwnerScope) -> list[str]:
        owned, params = scope.sql("i.owner")
        rows = self._db.connection().execute(
            f"SELECT DISTINCT i.speaker FROM memory_items i WHERE i.speaker IS NOT NULL "
            f"AND {owned}",
            params,
        )
        return [row[0] for row in rows]

    def newest_timestamp(self, *, scope: OwnerScope) -> datetime | None:
        owned, params = scope.sql("i.owner")
        row = (
            self._db.connection()
            .execute(f"SELECT max(i.ts_us) FROM memory_items i WHERE {owned}", params)
            .fetchone()
        )
        return None if row[0] is None else from_micros(row[0])

    def count(self) -> int:
        return int(self._db.connection().execute("SELECT count(*) FROM memory_items").fetchone()[0])

    def close(self) -> None:
        self._db.close()


def _row_to_item(row: Sequence[Any]) -> MemoryItem:
    return MemoryItem(
        id=row[0],
        text=row[1],
        kind=row[2],
        speaker=row[3],
        timestamp=from_micros(row[4]),
        emotion=row[5],
        source=row[6],
        conversation_id=row[7],
        metadata=json.loads(row[8]),
        parent_id=row[9],
        chunk_index=row[10],
        chunk_count=row[11],
        created_at=from_micros(row[12]),
        owner=row[13],
    )
