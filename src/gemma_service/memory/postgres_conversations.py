"""Server-side conversations in PostgreSQL, so every front replica continues every one.

The same contract as the SQLite ``ConversationStore`` (rows keyed by owner, conversation id and
seq). Appends to one conversation are serialized across replicas by a transaction-scoped
advisory lock on (owner, conversation), so two replicas never take the same seq.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from gemma_service.memory.conversations import SUMMARY_PREFIX, ConversationMessage, Role
from gemma_service.memory.owners import check_owner
from gemma_service.memory.store import MemoryConfigError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversation_messages (
    owner text NOT NULL,
    conversation_id text NOT NULL,
    seq integer NOT NULL,
    role text NOT NULL,
    content text NOT NULL,
    is_summary boolean NOT NULL DEFAULT false,
    created_us bigint NOT NULL,
    PRIMARY KEY (owner, conversation_id, seq)
)
"""
_LOCK = (
    "SELECT pg_advisory_xact_lock("
    "hashtext('gemma_service.conversation'), hashtext(%s || '/' || %s))"
)


class PostgresConversationStore:
    """Conversations in PostgreSQL; one connection, used by one thread at a time."""

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError as exc:
            raise MemoryConfigError(
                "GEMMA_MEMORY_URL names PostgreSQL but psycopg is not installed "
                "(pip install 'gemma-service[postgres]')"
            ) from exc
        try:
            self._conn: Any = psycopg.connect(url, autocommit=True)
        except psycopg.OperationalError as exc:
            raise MemoryConfigError(f"cannot connect to the conversation database: {exc}") from exc
        self._lock = threading.Lock()
        with self._lock, self._conn.transaction():
            self._conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext('gemma_service.conv_schema'))"
            )
            self._conn.execute(_SCHEMA)

    def append(self, conversation_id: str, role: Role, content: str, *, owner: str) -> None:
        self.extend(conversation_id, [ConversationMessage(role, content)], owner=owner)

    def extend(
        self, conversation_id: str, messages: Sequence[ConversationMessage], *, owner: str
    ) -> None:
        """Append several messages atomically (e.g. the user's turn and the reply)."""
        check_owner(owner)
        now_us = time.time_ns() // 1000
        with self._lock, self._conn.transaction():
            self._conn.execute(_LOCK, (owner, conversation_id))
            row = self._conn.execute(
                "SELECT coalesce(max(seq), 0) FROM conversation_messages "
                "WHERE owner = %s AND conversation_id = %s",
                (owner, conversation_id),
            ).fetchone()
            with self._conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO conversation_messages "
                    "(owner, conversation_id, seq, role, content, is_summary, created_us) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    [
                        (
                            owner,
                            conversation_id,
                            row[0] + n,
                            m.role,
                            m.content,
                            m.is_summary,
                            now_us,
                        )
                        for n, m in enumerate(messages, 1)
                    ],
                )

    def load(self, conversation_id: str, *, owner: str) -> list[ConversationMessage]:
        """The owner's conversation, oldest first; empty for an id the owner has not used."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT role, content, is_summary FROM conversation_messages "
                "WHERE owner = %s AND conversation_id = %s ORDER BY seq",
                (owner, conversation_id),
            ).fetchall()
        return [ConversationMessage(row[0], row[1], bool(row[2])) for row in rows]

    def replace_with_summary(
        self, conversation_id: str, n_oldest: int, summary: str, *, owner: str
    ) -> None:
        """Replace the ``n_oldest`` messages by one system message holding ``summary``."""
        if n_oldest <= 0:
            return
        with self._lock, self._conn.transaction():
            self._conn.execute(_LOCK, (owner, conversation_id))
            seqs = [
                row[0]
                for row in self._conn.execute(
                    "SELECT seq FROM conversation_messages "
                    "WHERE owner = %s AND conversation_id = %s ORDER BY seq LIMIT %s",
                    (owner, conversation_id, n_oldest),
                ).fetchall()
            ]
            if not seqs:
                return
            self._conn.execute(
                "DELETE FROM conversation_messages "
                "WHERE owner = %s AND conversation_id = %s AND seq <= %s",
                (owner, conversation_id, seqs[-1]),
            )
            self._conn.execute(
                "INSERT INTO conversation_messages "
                "(owner, conversation_id, seq, role, content, is_summary, created_us) "
                "VALUES (%s, %s, %s, 'system', %s, true, %s)",
                (owner, conversation_id, seqs[0], SUMMARY_PREFIX + summary, time.time_ns() // 1000),
            )

    def delete(self, conversation_id: str, *, owner: str) -> bool:
        """Forget the owner's conversation; False when it had none under that id."""
        with self._lock:
            cursor = self._conn.execute(
                "DELETE FROM conversation_messages WHERE owner = %s AND conversation_id = %s",
                (owner, conversation_id),
            )
        return bool(cursor.rowcount > 0)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
