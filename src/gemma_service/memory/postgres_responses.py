"""Stored responses in PostgreSQL (``GEMMA_MEMORY_URL=postgresql://...``), shared by replicas."""

from __future__ import annotations

import threading
from typing import Any

from gemma_service.memory.store import MemoryConfigError
from gemma_service.memory.stored_responses import StoredResponse, owner_key

_SCHEMA = """
CREATE TABLE IF NOT EXISTS stored_responses (
    id text PRIMARY KEY,
    owner text NOT NULL,
    created_at bigint NOT NULL,
    response jsonb NOT NULL,
    input_items jsonb NOT NULL,
    context jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS stored_responses_owner ON stored_responses (owner, created_at);
"""


class PostgresResponseStore:
    """``ResponseStore`` on PostgreSQL: one autocommit connection, used under a lock."""

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError as exc:
            raise MemoryConfigError(
                "GEMMA_MEMORY_URL names PostgreSQL but psycopg is not installed "
                "(pip install 'gemma-service[postgres]')"
            ) from exc
        self._psycopg = psycopg
        self.url = url
        self._lock = threading.Lock()
        self._conn: Any = None
        self._closed = False
        with self._lock:
            conn = self._connection()
            with conn.transaction():
                # Several servers may start at once against one database.
                conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext('gemma_service.responses_schema'))"
                )
                conn.execute(_SCHEMA)

    def _connection(self) -> Any:
        """The open connection (reconnecting after the server dropped it); call under the lock."""
        if self._closed:
            raise RuntimeError("the response store is closed")
        if self._conn is None or self._conn.closed:
            try:
                self._conn = self._psycopg.connect(self.url, autocommit=True)
            except self._psycopg.OperationalError as exc:
                raise MemoryConfigError(f"cannot connect to the memory database: {exc}") from exc
        return self._conn

    def put(self, stored: StoredResponse) -> None:
        from psycopg.types.json import Jsonb

        with self._lock:
            self._connection().execute(
                "INSERT INTO stored_responses "
                "(id, owner, created_at, response, input_items, context) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (
                    stored.id,
                    owner_key(stored.owner),
                    stored.created_at,
                    Jsonb(stored.response),
                    Jsonb(stored.input_items),
                    Jsonb(stored.context),
                ),
            )

    def get(self, owner: str | None, response_id: str) -> StoredResponse | None:
        with self._lock:
            row = (
                self._connection()
                .execute(
                    "SELECT created_at, response, input_items, context FROM stored_responses "
                    "WHERE id = %s AND owner = %s",
                    (response_id, owner_key(owner)),
                )
                .fetchone()
            )
        if row is None:
            return None
        return StoredResponse(response_id, owner, int(row[0]), row[1], row[2], row[3])

    def delete(self, owner: str | None, response_id: str) -> bool:
        with self._lock:
            cursor = self._connection().execute(
                "DELETE FROM stored_responses WHERE id = %s AND owner = %s",
                (response_id, owner_key(owner)),
            )
        return bool(cursor.rowcount)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None
