"""Cosine search over float32 BLOBs in SQLite with sqlite-vec, where it loads (otherwise the
store uses ``SqliteVectorIndex``)."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from gemma_service.memory.store import MemoryConfigError

logger = logging.getLogger(__name__)

VectorEngine = Literal["auto", "sqlite-vec", "numpy"]


def float32_blob(values: Sequence[float]) -> bytes:
    """The little-endian float32 layout that sqlite-vec reads."""
    return np.asarray(values, dtype="<f4").tobytes()


def try_load_sqlite_vec(conn: sqlite3.Connection) -> str | None:
    """Load sqlite-vec into ``conn``; the reason when it cannot be loaded, else None."""
    if not hasattr(conn, "enable_load_extension"):
        # e.g. a pyenv Python built without --enable-loadable-sqlite-extensions
        return "this Python's sqlite3 module cannot load SQLite extensions"
    try:
        import sqlite_vec
    except ImportError:
        return "the sqlite-vec package is not installed"
    try:
        conn.enable_load_extension(True)
        sqlite_vec.load(conn)
        conn.enable_load_extension(False)
    except sqlite3.Error as exc:
        return f"SQLite refused the sqlite-vec extension: {exc}"
    return None


def resolve_vector_engine(requested: VectorEngine, unavailable_reason: str | None) -> str:
    """Pick the engine; 'sqlite-vec' asked for but not loadable is an error."""
    if requested == "numpy":
        return "numpy"
    if unavailable_reason is None:
        return "sqlite-vec"
    if requested == "sqlite-vec":
        raise MemoryConfigError(f"sqlite-vec is unavailable: {unavailable_reason}")
    logger.info("memory vectors are scored with numpy: %s", unavailable_reason)
    return "numpy"


def nearest_with_sqlite_vec(
    conn: sqlite3.Connection, query: bytes, where: str, params: list[Any], limit: int
) -> list[tuple[str, float]]:
    """(item id, cosine similarity) of the nearest filtered items, computed inside SQLite."""
    rows = conn.execute(
        "SELECT i.id, vec_distance_cosine(e.embedding, ?) AS distance "
        "FROM memory_items i JOIN memory_embeddings e ON e.rowid = i.rowid "
        f"WHERE {where} ORDER BY distance, i.rowid LIMIT ?",
        [query, *params, limit],
    ).fetchall()
    return [(row[0], 1.0 - float(row[1])) for row in rows]
