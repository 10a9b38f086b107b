"""Server-side chat history per conversation_id, persisted in SQLite, and a fitting helper."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gemma_service.memory.sqlite_connections import SqliteConnections

Role = Literal["system", "user", "assistant", "tool"]
SUMMARY_PREFIX = "Summary of the earlier conversation: "
CONVERSATIONS_FILE_NAME = "conversations.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversation_messages (
    conversation_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    is_summary INTEGER NOT NULL DEFAULT 0,
    created_us INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);
"""


@dataclass(frozen=True)
class ConversationMessage:
    """One turn of a stored conversation; a summary stands in for older turns."""

    role: Role
    content: str
    is_summary: bool = False


class ConversationStore:
    """Conversations in one SQLite file; each write is durable when it returns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = SqliteConnections(path)
        self._db.run_script(_SCHEMA)

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> ConversationStore:
        """The store at its default place, ``GEMMA_DATA_DIR/conversations.sqlite3``."""
        return cls(data_dir / CONVERSATIONS_FILE_NAME)

    def append(self, conversation_id: str, role: Role, content: str) -> None:
        self.extend(conversation_id, [ConversationMessage(role, content)])

    def extend(self, conversation_id: str, messages: Sequence[ConversationMessage]) -> None:
        """Append several messages atomically (e.g. the user's turn and the reply)."""
        now_us = time.time_ns() // 1000
        with self._db.write() as tx:
            row = tx.execute(
                "SELECT coalesce(max(seq), 0) FROM conversation_messages WHERE conversation_id = ?",
                (conversation_id,),
            ).fetchone()
            tx.executemany(
                "INSERT INTO conversation_messages "
                "(conversation_id, seq, role, content, is_summary, created_us) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (conversation_id, row[0] + n, m.role, m.content, int(m.is_summary), now_us)
                    for n, m in enumerate(messages, 1)
                ],
            )

    def load(self, conversation_id: str) -> list[ConversationMessage]:
        """The conversation's messages, oldest first; empty for an unknown id."""
        rows = self._db.connection().execute(
            "SELECT role, content, is_summary FROM conversation_messages "
            "WHERE conversation_id = ? ORDER BY seq",
            (conversation_id,),
        )
        return [ConversationMessage(row[0], row[1], bool(row[2])) for row in rows]

    def replace_with_summary(self, conversation_id: str, n_oldest: int, summary: str) -> None:
        """Replace the ``n_oldest`` messages by one system message holding ``summary``."""
        if n_oldest <= 0:
            return
        with self._db.write() as tx:
            seqs = [
                row[0]
                for row in tx.execute(
                    "SELECT seq FROM conversation_messages WHERE conversation_id = ? "
                    "ORDER BY seq LIMIT ?",
                    (conversation_id, n_oldest),
                )
            ]
            if not seqs:
                return
            tx.execute(
                "DELETE FROM conversation_messages WHERE conversation_id = ? AND seq <= ?",
                (conversation_id, seqs[-1]),
            )
            # The summary takes the oldest slot, so it still comes before the kept turns.
            tx.execute(
                "INSERT INTO conversation_messages "
                "(conversation_id, seq, role, content, is_summary, created_us) "
                "VALUES (?, ?, 'system', ?, 1, ?)",
                (conversation_id, seqs[0], SUMMARY_PREFIX + summary, time.time_ns() // 1000),
            )

    def delete(self, conversation_id: str) -> bool:
        """Forget a conversation; False when there was none."""
        with self._db.write() as tx:
            cursor = tx.execute(
                "DELETE FROM conversation_messages WHERE conversation_id = ?", (conversation_id,)
            )
        return cursor.rowcount > 0

    def close(self) -> None:
        self._db.close()


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
