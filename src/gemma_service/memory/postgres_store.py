"""The scale-out memory store: PostgreSQL with a tsvector column and a pgvector embedding."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np

from gemma_service.memory.models import (
    NO_FILTERS,
    MemoryItem,
    MemoryRecord,
    RankedId,
    SearchFilters,
    as_aware_utc,
)
from gemma_service.memory.owner_columns import add_owner_column_postgres
from gemma_service.memory.owners import LOCAL_OWNER, OwnerScope
from gemma_service.memory.postgres_migrations import migrate
from gemma_service.memory.store import (
    ABOUT_WEIGHT,
    EmbeddingDimensionMismatchError,
    FloatVector,
    MemoryConfigError,
    check_embedding,
    lexical_terms,
    require_owners,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS memory_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS memory_items (
    id text PRIMARY KEY,
    text text NOT NULL,
    kind text NOT NULL,
    speaker text,
    ts timestamptz NOT NULL,
    emotion text,
    source text,
    conversation_id text,
    metadata jsonb NOT NULL,
    parent_id text,
    chunk_index integer NOT NULL,
    chunk_count integer NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS memory_items_ts ON memory_items (ts);
CREATE INDEX IF NOT EXISTS memory_items_speaker ON memory_items (speaker);
CREATE INDEX IF NOT EXISTS memory_items_conversation ON memory_items (conversation_id);
"""
_ITEM_COLUMNS = (
    "id, text, kind, speaker, ts, emotion, source, conversation_id, metadata, parent_id, "
    "chunk_index, chunk_count, created_at, owner"
)


def filter_clause(filters: SearchFilters, scope: OwnerScope) -> tuple[str, list[Any]]:
    """SQL conditions on memory_items for the caller's scope and the set filters (always a
    valid AND term)."""
    owned, owner_params = scope.sql(placeholder="%s")
    conditions, params = [owned], list[Any](owner_params)
    for column, operator, value in (
        ("speaker", "=", filters.speaker),
        ("kind", "=", filters.kind),
        ("conversation_id", "=", filters.conversation_id),
        ("ts", ">=", filters.since),
        ("ts", "<=", filters.until),
    ):
        if value is not None:
            conditions.append(f"{column} {operator} %s")
            params.append(value)
    return " AND ".join(conditions), params


def tsquery_text(query: str) -> str | None:
    """A to_tsquery() input matching any word of ``query``; only letters and digits reach it,
    so no user text is a tsquery syntax error."""
    terms = lexical_terms(query)
    return " | ".join(terms) if terms else None


def vector_literal(values: Sequence[float]) -> str:
    return "[" + ",".join(repr(float(v)) for v in values) + "]"


def parse_vector(text: str) -> FloatVector:
    """pgvector's text form, ``[0.1,0.2,...]``, as float32."""
    return np.array(text.strip("[]").split(","), dtype=np.float32)


class PostgresMemoryStore:
    """MemoryStore on PostgreSQL + pgvector; one connection per thread."""

    def __init__(
        self, url: str, embedding_dim: int | None, *, legacy_owner: str = LOCAL_OWNER
    ) -> None:
        try:
            import psycopg
        except ImportError as exc:
            raise MemoryConfigError(
                "GEMMA_MEMORY_URL names PostgreSQL but psycopg is not installed "
                "(pip install 'gemma-service[postgres]')"
            ) from exc
        self._psycopg = psycopg
        self.url = url
        self._local = threading.local()
        self._connections: list[Any] = []
        self._connections_lock = threading.Lock()
        self._closed = False
        self._legacy_owner = legacy_owner
        try:
            self._embedding_dim = self._prepare_schema(embedding_dim)
        except BaseException:
            self.close()
            raise

    @property
    def embedding_dim(self) -> int | None:
        return self._embedding_dim

    def _connect(self) -> Any:
        if self._closed:
            raise RuntimeError("memory store is closed")
        conn = getattr(self._local, "conn", None)
        if conn is not None and not conn.closed:
            return conn
        try:
            conn = self._psycopg.connect(self.url, autocommit=True)
        except self._psycopg.OperationalError as exc:
            raise MemoryConfigError(f"cannot connect to the memory database: {exc}") from exc
        self._local.conn = conn
        with self._connections_lock:
            self._connections.append(conn)
        return conn

    def _prepare_schema(self, embedding_dim: int | None) -> int | None:
        conn = self._connect()
        with conn.transaction():
            # Several servers may start at once against one database.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('gemma_service.memory_schema'))")
            try:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except self._psycopg.Error as exc:
                raise MemoryConfigError(
                    f"the memory database lacks the pgvector extension: {exc}"
                ) from exc
            conn.execute(_SCHEMA)
            migrate(conn)
            add_owner_column_postgres(conn, self._legacy_owner)
            row = conn.execute(
                "SELECT value FROM memory_meta WHERE key = 'embedding_dim'"
            ).fetchone()
            stored_dim = int(row[0]) if row else None
            if stored_dim is not None and embedding_dim not in (None, stored_dim):
                raise EmbeddingDimensionMismatchError(stored_dim, embedding_dim or 0, "database")
            if stored_dim is None and embedding_dim is not None:
                self._add_embedding_column(conn, int(embedding_dim))
                stored_dim = embedding_dim
        return stored_dim

    @staticmethod
    def _add_embedding_column(conn: Any, dim: int) -> None:
        conn.execute(
            "INSERT INTO memory_meta (key, value) VALUES ('embedding_dim', %s)", (str(dim),)
        )
        conn.execute(f"ALTER TABLE memory_items ADD COLUMN embedding vector({dim})")
        conn.execute(
            "CREATE INDEX memory_items_embedding ON memory_items "
            "USING hnsw (embedding vector_cosine_ops)"
        )

    def add(self, records: Sequence[MemoryRecord]) -> list[str]:
        require_owners(records)
        for record in records:
            if record.embedding is not None:
                check_embedding(record.embedding, self._embedding_dim)
        conn = self._connect()
        with conn.transaction(), conn.cursor() as cursor:
            for record in records:
                self._insert(cursor, record)
        return [record.item.id for record in records]

    def _insert(self, cursor: Any, record: MemoryRecord) -> None:
        from psycopg.types.json import Jsonb

        item = record.item
        values = [
            item.id,
            item.text,
            item.kind,
            item.speaker,
            item.timestamp or item.created_at,
            item.emotion,
            item.source,
            item.conversation_id,
            Jsonb(item.metadata),
            item.parent_id,
            item.chunk_index,
            item.chunk_count,
            item.created_at,
            item.owner,
        ]
        columns, marks = _ITEM_COLUMNS, ", ".join(["%s"] * len(values))
        if record.embedding is not None:
            columns += ", embedding"
            marks += ", %s::vector"
            values.append(vector_literal(record.embedding))
        cursor.execute(f"INSERT INTO memory_items ({columns}) VALUES ({marks})", values)

    def get(self, item_id: str, *, scope: OwnerScope) -> MemoryItem | None:
        return self.get_many([item_id], scope=scope).get(item_id)

    def get_many(self, item_ids: Sequence[str], *, scope: OwnerScope) -> dict[str, MemoryItem]:
        if not item_ids:
            return {}
        owned, owner_params = scope.sql(placeholder="%s")
        rows = self._connect().execute(
            f"SELECT {_ITEM_COLUMNS} FROM memory_items WHERE id = ANY(%s) AND {owned}",
            [list(item_ids), *owner_params],
        )
        return {row[0]: _row_to_item(row) for row in rows}

    def delete(self, item_id: str, *, scope: OwnerScope) -> bool:
        owned, owner_params = scope.sql(placeholder="%s")
        cursor = self._connect().execute(
            f"DELETE FROM memory_items WHERE id = %s AND {owned}", [item_id, *owner_params]
        )
        return bool(cursor.rowcount)

    def lexical_search(
        self, query: str, filters: SearchFilters, limit: int, *, scope: OwnerScope
    ) -> list[RankedId]:
        text = tsquery_text(query)
        if text is None or limit <= 0:
            return []
        where, params = filter_clause(filters, scope)
        rows = (
            self._connect()
            .execute(
                f"SELECT id, ts_rank('{{{ABOUT_WEIGHT}, 0, 0, 1}}', tsv, q, 1) AS score "
                "FROM memory_items, to_tsquery('english', %s) AS q "
                f"WHERE tsv @@ q AND {where} ORDER BY score DESC, created_at, id LIMIT %s",
                [text, *params, limit],
            )
            .fetchall()
        )
        return [RankedId(row[0], rank, float(row[1])) for rank, row in enumerate(rows, 1)]

    def vector_search(
        self, embedding: Sequence[float], filters: SearchFilters, limit: int, *, scope: OwnerScope
    ) -> list[RankedId]:
        check_embedding(embedding, self._embedding_dim)
        if limit <= 0:
            return []
        where, params = filter_clause(filters, scope)
        query = vector_literal(embedding)
        # The HNSW index filters after its approximate search and can return fewer than `limit`
        # rows; filtered searches scan the filtered rows exactly instead. An owner's search
        # tries the index first (an owner with most of the rows fills the limit from it) and
        # scans exactly only when it came back short.
        exact = filters != NO_FILTERS
        rows = self._nearest(query, where, params, limit, exact=exact)
        if len(rows) < limit and not exact and not scope.every_owner:
            rows = self._nearest(query, where, params, limit, exact=True)
        return [RankedId(row[0], rank, 1.0 - float(row[1])) for rank, row in enumerate(rows, 1)]

    def _nearest(
        self, query: str, where: str, params: list[Any], limit: int, *, exact: bool
    ) -> list[Any]:
        conn = self._connect()
        with conn.transaction():
            if exact:
                conn.execute("SET LOCAL enable_indexscan = off")
            rows: list[Any] = conn.execute(
                "SELECT id, embedding <=> %s::vector AS distance FROM memory_items "
                f"WHERE embedding IS NOT NULL AND {where} ORDER BY distance LIMIT %s",
                [query, *params, limit],
            ).fetchall()
        return rows

    def embeddings_of(self, item_ids: Sequence[str]) -> dict[str, FloatVector]:
        if not item_ids or self._embedding_dim is None:
            return {}
        rows = self._connect().execute(
            "SELECT id, embedding::text FROM memory_items "
            "WHERE id = ANY(%s) AND embedding IS NOT NULL",
            (list(item_ids),),
        )
        return {row[0]: parse_vector(row[1]) for row in rows}

    def speakers(self, *, scope: OwnerScope) -> list[str]:
        owned, params = scope.sql("owner", "%s")
        rows = self._connect().execute(
            f"SELECT DISTINCT speaker FROM memory_items WHERE speaker IS NOT NULL AND {owned}",
            params,
        )
        return [row[0] for row in rows]

    def newest_timestamp(self, *, scope: OwnerScope) -> datetime | None:
        owned, params = scope.sql("owner", "%s")
        row = (
            self._connect()
            .execute(f"SELECT max(ts) FROM memory_items WHERE {owned}", params)
            .fetchone()
        )
        return None if row[0] is None else as_aware_utc(row[0])

    def count(self) -> int:
        row = self._connect().execute("SELECT count(*) FROM memory_items").fetchone()
        return int(row[0])

    def close(self) -> None:
        with self._connections_lock:
            self._closed = True
            for conn in self._connections:
                conn.close()
            self._connections.clear()


def _row_to_item(row: Sequence[Any]) -> MemoryItem:
    return MemoryItem(
        id=row[0],
        text=row[1],
        kind=row[2],
        speaker=row[3],
        timestamp=as_aware_utc(row[4]),
        emotion=row[5],
        source=row[6],
        conversation_id=row[7],
        metadata=row[8],
        parent_id=row[9],
        chunk_index=row[10],
        chunk_count=row[11],
        created_at=as_aware_utc(row[12]),
        owner=row[13],
    )
