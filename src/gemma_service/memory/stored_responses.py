"""Stored responses of the Responses API: what ``GET /v1/responses/{id}`` returns and what
``previous_response_id`` continues from; durable, and each one belongs to an owner.

They are kept next to the server-side conversations: a table in
``GEMMA_DATA_DIR/conversations.sqlite3``, or in PostgreSQL when ``GEMMA_MEMORY_URL`` names one
(so front replicas share them). Every read and delete names the owner in the query itself:
another owner's response is not found, exactly like an id that does not exist.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gemma_service.memory.conversations import CONVERSATIONS_FILE_NAME
from gemma_service.memory.sqlite_connections import SqliteConnections

# The owner of rows stored for callers without one (an open server: one local owner).
SHARED_OWNER = ""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS stored_responses (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    response TEXT NOT NULL,
    input_items TEXT NOT NULL,
    context TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS stored_responses_owner ON stored_responses (owner, created_at);
"""


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """One stored response.

    ``response`` is the response object as returned; ``input_items`` the items its request
    sent; ``context`` every item a continuation starts from (the earlier turns of its chain,
    its input, its output), so a chain reads one row however long it grew.
    """

    id: str
    owner: str | None
    created_at: int
    response: dict[str, Any]
    input_items: list[dict[str, Any]]
    context: list[dict[str, Any]]


class ResponseStore(Protocol):
    """Stored responses, scoped by owner. Thread-safe; a ``put`` is durable when it returns."""

    def put(self, stored: StoredResponse) -> None: ...

    def get(self, owner: str | None, response_id: str) -> StoredResponse | None:
        """The response, if it exists and belongs to ``owner``."""
        ...

    def delete(self, owner: str | None, response_id: str) -> bool:
        """Forget the response; False when ``owner`` has none with this id."""
        ...

    def close(self) -> None: ...


def owner_key(owner: str | None) -> str:
    """The owner column's value (callers without an owner share one)."""
    return SHARED_OWNER if owner is None else owner


class SqliteResponseStore:
    """Stored responses in an SQLite file (WAL, fsynced at each commit)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = SqliteConnections(path)
        self._db.run_script(_SCHEMA)

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> SqliteResponseStore:
        """Beside the conversations, in ``GEMMA_DATA_DIR/conversations.sqlite3``."""
        return cls(data_dir / CONVERSATIONS_FILE_NAME)

    def put(self, stored: StoredResponse) -> None:
        with self._db.write() as tx:
            tx.execute(
                "INSERT INTO stored_responses "
                "(id, owner, created_at, response, input_items, context) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    stored.id,
                    owner_key(stored.owner),
                    stored.created_at,
                    json.dumps(stored.response),
                    json.dumps(stored.input_items),
                    json.dumps(stored.context),
                ),
            )

    def get(self, owner: str | None, response_id: str) -> StoredResponse | None:
        row = (
            self._db.connection()
            .execute(
                "SELECT created_at, response, input_items, context FROM stored_responses "
                "WHERE id = ? AND owner = ?",
                (response_id, owner_key(owner)),
            )
            .fetchone()
        )
        if row is None:
            return None
        return StoredResponse(
            response_id, owner, row[0], json.loads(row[1]), json.loads(row[2]), json.loads(row[3])
        )

    def delete(self, owner: str | None, response_id: str) -> bool:
        with self._db.write() as tx:
            cursor = tx.execute(
                "DELETE FROM stored_responses WHERE id = ? AND owner = ?",
                (response_id, owner_key(owner)),
            )
        return cursor.rowcount > 0

    def close(self) -> None:
        self._db.close()
