"""The ``owner`` column of the memory stores, and the step that adds it to stores made before
owners existed: their rows go to one configured owner (GEMMA_LEGACY_OWNER).

The step looks for the column rather than at a schema version number, so it runs exactly once
on any store, whichever numbered schema steps (``sqlite_migrations`` / ``postgres_migrations``)
ran before it, and it never changes the version those steps keep. It runs inside the store's
schema transaction (under the advisory lock on PostgreSQL), after the numbered steps.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from gemma_service.memory.owners import check_owner

logger = logging.getLogger(__name__)


def add_owner_column_sqlite(tx: sqlite3.Connection, legacy_owner: str) -> int:
    """Give ``memory_items`` its owner column (existing rows: ``legacy_owner``) and the index
    scoped queries use; the number of rows given away (0 when the column was there)."""
    check_owner(legacy_owner)
    columns = {row[1] for row in tx.execute("PRAGMA table_info(memory_items)")}
    moved = 0
    if "owner" not in columns:
        # SQLite adds a NOT NULL column only with a default; '' is nobody's owner (check_owner),
        # so a row that ever skipped the owner would be nobody's, never somebody else's.
        tx.execute("ALTER TABLE memory_items ADD COLUMN owner TEXT NOT NULL DEFAULT ''")
        moved = tx.execute("UPDATE memory_items SET owner = ?", (legacy_owner,)).rowcount
        _log_moved(moved, legacy_owner)
    tx.execute("CREATE INDEX IF NOT EXISTS memory_items_owner_ts ON memory_items (owner, ts_us)")
    return moved


def add_owner_column_postgres(conn: Any, legacy_owner: str) -> int:
    """The same step on PostgreSQL (``conn`` inside the schema transaction)."""
    check_owner(legacy_owner)
    present = conn.execute(
        "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = 'memory_items' AND column_name = 'owner'"
    ).fetchone()
    moved = 0
    if present is None:
        conn.execute("ALTER TABLE memory_items ADD COLUMN owner text")
        moved = conn.execute("UPDATE memory_items SET owner = %s", (legacy_owner,)).rowcount
        conn.execute("ALTER TABLE memory_items ALTER COLUMN owner SET NOT NULL")
        _log_moved(moved, legacy_owner)
    conn.execute("CREATE INDEX IF NOT EXISTS memory_items_owner_ts ON memory_items (owner, ts)")
    return int(moved)


def _log_moved(moved: int, owner: str) -> None:
    if moved:
        logger.warning(
            "memory store: %d memories stored before owners existed now belong to %r "
            "(GEMMA_LEGACY_OWNER)",
            moved,
            owner,
        )
