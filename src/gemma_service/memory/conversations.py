"""Server-side chat history per owner and conversation_id, persisted in SQLite, and a fitting
helper.

A conversation id is the client's choice, so two owners may use the same one: each has its own
conversation under it (the key is owner, conversation_id, seq) and sees only that one.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from gemma_service.memory.owners import LOCAL_OWNER, check_owner
from gemma_service.memory.sqlite_connections import SqliteConnections

logger = logging.getLogger(__name__)

Role = Literal["system", "user", "assistant", "tool"]
SUMMARY_PREFIX = "Summary of the earlier conversation: "
CONVERSATIONS_FILE_NAME = "conversations.sqlite3"

_TABLE = """
CREATE TABLE {if_not_exists} conversation_messages (
    owner TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    is_summary INTEGER NOT NULL DEFAULT 0,
    created_us INTEGER NOT NULL,
    PRIMARY KEY (owner, conversation_id, seq)
)
"""
_SCHEMA = _TABLE.format(if_not_exists="IF NOT EXISTS") + ";"


@dataclass(frozen=True)
class ConversationMessage:
    """One turn of a stored conversation; a summary stands in for older turns."""

    role: Role
    content: str
    is_summary: bool = False


class ConversationHistory(Protocol):
    """Where server-side conversations live: ``ConversationStore`` (SQLite) here, or
    ``PostgresConversationStore`` shared by front replicas."""

    def append(self, conversation_id: str, role: Role, content: str, *, owner: str) -> None: ...

    def extend(
        self, conversation_id: str, messages: Sequence[ConversationMessage], *, owner: str
    ) -> None: ...

    def load(self, conversation_id: str, *, owner: str) -> list[ConversationMessage]: ...

    def replace_with_summary(
        self, conversation_id: str, n_oldest: int, summary: str, *, owner: str
    ) -> None: ...

    def delete(self, conversation_id: str, *, owner: str) -> bool: ...

    def close(self) -> None: ...


class ConversationStore:
    """Conversations in one SQLite file, each one owner's; each write is durable when it
    returns. Every method names the owner, and every query keeps to that owner's rows."""

    def __init__(self, path: Path, *, legacy_owner: str = LOCAL_OWNER) -> None:
        self.path = path
        self._db = SqliteConnections(path)
        try:
            self._db.run_script(_SCHEMA)
            with self._db.write() as tx:
                add_owner_to_conversations(tx, legacy_owner)
        except BaseException:
            self._db.close()
            raise

    @classmethod
    def in_data_dir(cls, data_dir: Path, *, legacy_owner: str = LOCAL_OWNER) -> ConversationStore:
        """The store at its default place, ``GEMMA_DATA_DIR/conversations.sqlite3``."""
        return cls(data_dir / CONVERSATIONS_FILE_NAME, legacy_owner=legacy_owner)

    def append(self, conversation_id: str, role: Role, content: str, *, owner: str) -> None:
        self.extend(conversation_id, [ConversationMessage(role, content)], owner=owner)

    def extend(
        self, conversation_id: str, messages: Sequence[ConversationMessage], *, owner: str
    ) -> None:
        """Append several messages atomically (e.g. the user's turn and the reply)."""
        check_owner(owner)
        now_us = time.time_ns() // 1000
        with self._db.write() as tx:
            row = tx.execute(
                "SELECT coalesce(max(seq), 0) FROM conversation_messages "
                "WHERE owner = ? AND conversation_id = ?",
                (owner, conversation_id),
            ).fetchone()
            tx.executemany(
                "INSERT INTO conversation_messages "
                "(owner, conversation_id, seq, role, content, is_summary, created_us) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (owner, conversation_id, row[0] + n, m.role, m.content, m.is_summary, now_us)
                    for n, m in enumerate(messages, 1)
                ],
            )

    def load(self, conversation_id: str, *, owner: str) -> list[ConversationMessage]:
        """The owner's conversation, oldest first; empty for an id the owner has not used."""
        rows = self._db.connection().execute(
            "SELECT role, content, is_summary FROM conversation_messages "
            "WHERE owner = ? AND conversation_id = ? ORDER BY seq",
            (owner, conversation_id),
        )
        return [ConversationMessage(row[0], row[1], bool(row[2])) for row in rows]

    def replace_with_summary(
        self, conversation_id: str, n_oldest: int, summary: str, *, owner: str
    ) -> None:
        """Replace the ``n_oldest`` messages by one system message holding ``summary``."""
        if n_oldest <= 0:
            return
        with self._db.write() as tx:
            seqs = [
                row[0]
                for row in tx.execute(
                    "SELECT seq FROM conversation_messages WHERE owner = ? AND conversation_id = ? "
                    "ORDER BY seq LIMIT ?",
                    (owner, conversation_id, n_oldest),
                )
            ]
            if not seqs:
                return
            tx.execute(
                "DELETE FROM conversation_messages "
                "WHERE owner = ? AND conversation_id = ? AND seq <= ?",
                (owner, conversation_id, seqs[-1]),
            )
            # The summary takes the oldest slot, so it still comes before the kept turns.
            tx.execute(
                "INSERT INTO conversation_messages "
                "(owner, conversation_id, seq, role, content, is_summary, created_us) "
                "VALUES (?, ?, ?, 'system', ?, 1, ?)",
                (owner, conversation_id, seqs[0], SUMMARY_PREFIX + summary, time.time_ns() // 1000),
            )

    def delete(self, conversation_id: str, *, owner: str) -> bool:
        """Forget the owner's conversation; False when it had none under that id."""
        with self._db.write() as tx:
            cursor = tx.execute(
                "DELETE FROM conversation_messages WHERE owner = ? AND conversation_id = ?",
                (owner, conversation_id),
            )
        return cursor.rowcount > 0

    def close(self) -> None:
        self._db.close()


def add_owner_to_conversations(tx: sqlite3.Connection, legacy_owner: str) -> int:
    """Rebuild a conversations table made before owners existed with the owner in its key; its
    messages go to ``legacy_owner``. The number of messages given away (0: nothing to do)."""
    check_owner(legacy_owner)
    columns = {row[1] for row in tx.execute("PRAGMA table_info(conversation_messages)")}
    if "owner" in columns:
        return 0
    # SQLite cannot change a primary key in place: copy into the new layout.
    tx.execute("ALTER TABLE conversation_messages RENAME TO conversation_messages_unowned")
    tx.execute(_TABLE.format(if_not_exists=""))
    moved = tx.execute(
        "INSERT INTO conversation_messages "
        "(owner, conversation_id, seq, role, content, is_summary, created_us) "
        "SELECT ?, conversation_id, seq, role, content, is_summary, created_us "
        "FROM conversation_messages_unowned",
        (legacy_owner,),
    ).rowcount
    tx.execute("DROP TABLE conversation_messages_unowned")
    if moved:
        logger.warning(
            "conversations: %d messages stored before owners existed now belong to %r "
            "(GEMMA_LEGACY_OWNER)",
            moved,
            legacy_owner,
        )
    return int(moved)


def fit_history(
    messages: Sequence[ConversationMessage],
    count_tokens: Callable[[ConversationMessage], int],
    budget: int,
) -> tuple[list[ConversationMessage], list[ConversationMessage]]:
    """Split history into (kept, dropped): kept is the longest run of newest messages whose
    token counts fit ``budget``; dropped are the older ones, oldest first."""
    used = 0
    keep_from = len(messages)
    for index in range(len(messages) - 1, -1, -1):
        used += count_tokens(messages[index])
        if used > budget:
            break
        keep_from = index
    return list(messages[keep_from:]), list(messages[:keep_from])
