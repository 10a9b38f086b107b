"""Cosine search over float32 BLOBs in SQLite: sqlite-vec where it loads, numpy otherwise."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from gemma_service.memory.store import MemoryConfigError

logger = logging.getLogger(__name__)

VectorEngine = Literal["auto", "sqlite-vec", "numpy"]
_SCAN_BATCH_ROWS = 4096


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


def nearest_with_numpy(
    conn: sqlite3.Connection, query: bytes, where: str, params: list[Any], limit: int
) -> list[tuple[str, float]]:
    """The same result as ``nearest_with_sqlite_vec``, scored in numpy batch by batch."""
    target = _unit(np.frombuffer(query, dtype="<f4"))
    cursor = conn.execute(
        "SELECT i.id, e.embedding FROM memory_items i "
        # rowid order makes ties go to the older item, as in the sqlite-vec query.
        f"JOIN memory_embeddings e ON e.rowid = i.rowid WHERE {where} ORDER BY i.rowid",
        params,
    )
    ids: list[str] = []
    scores: list[np.ndarray[Any, np.dtype[np.float32]]] = []
    while rows := cursor.fetchmany(_SCAN_BATCH_ROWS):
        matrix = np.frombuffer(b"".join(row[1] for row in rows), dtype="<f4")
        matrix = matrix.reshape(len(rows), target.shape[0])
        norms = np.linalg.norm(matrix, axis=1)
        norms[norms == 0] = 1.0
        scores.append((matrix @ target) / norms)
        ids.extend(row[0] for row in rows)
    if not ids:
        return []
    similarity = np.concatenate(scores)
    order = np.argsort(-similarity, kind="stable")[:limit]
    return [(ids[i], float(similarity[i])) for i in order]


def _unit(vector: np.ndarray[Any, np.dtype[np.float32]]) -> np.ndarray[Any, np.dtype[np.float32]]:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm else vector
