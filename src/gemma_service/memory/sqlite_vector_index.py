"""All of an SQLite store's vectors in one numpy matrix, kept in step with the file, so a
vector search is one matrix product instead of a scan of every BLOB (docs/memory.md,
"Latency")."""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

import numpy as np

from gemma_service.memory.store import FloatVector

_LOAD_BATCH_ROWS = 4096


class SqliteVectorIndex:
    """Unit vectors by rowid, in rowid order. ``sync`` reads rows added since the last call
    (max(rowid) grew) and reloads everything after any deletion (the delete trigger counts
    them in memory_meta), so it also sees writes by other processes."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._lock = threading.Lock()
        self._rowids = np.empty(0, dtype=np.int64)
        self._ids: list[str] = []
        self._matrix = np.empty((0, dim), dtype=np.float32)
        self._size = 0
        self._max_rowid = 0
        self._deletions: str | None = None

    def sync(self, conn: sqlite3.Connection) -> None:
        deletions = conn.execute("SELECT value FROM memory_meta WHERE key = 'deletions'").fetchone()
        marker = deletions[0] if deletions else None
        newest = conn.execute("SELECT max(rowid) FROM memory_embeddings").fetchone()[0] or 0
        with self._lock:
            if marker != self._deletions or newest < self._max_rowid:
                self._reset()
                self._deletions = marker
            if newest > self._max_rowid:
                self._append_from(conn, self._max_rowid)

    def _reset(self) -> None:
        self._rowids = np.empty(0, dtype=np.int64)
        self._ids = []
        self._matrix = np.empty((0, self.dim), dtype=np.float32)
        self._size = 0
        self._max_rowid = 0

    def _append_from(self, conn: sqlite3.Connection, after_rowid: int) -> None:
        cursor = conn.execute(
            "SELECT e.rowid, i.id, e.embedding FROM memory_embeddings e "
            "JOIN memory_items i ON i.rowid = e.rowid WHERE e.rowid > ? ORDER BY e.rowid",
            (after_rowid,),
        )
        while rows := cursor.fetchmany(_LOAD_BATCH_ROWS):
            block = np.frombuffer(b"".join(r[2] for r in rows), dtype="<f4")
            block = block.reshape(len(rows), self.dim)
            norms = np.linalg.norm(block, axis=1, keepdims=True)
            norms[norms == 0] = 1.0
            self._grow(len(rows))
            end = self._size + len(rows)
            self._matrix[self._size : end] = block / norms
            self._rowids[self._size : end] = [r[0] for r in rows]
            self._ids.extend(r[1] for r in rows)
            self._size = end
            self._max_rowid = int(rows[-1][0])

    def _grow(self, extra: int) -> None:
        """Double the buffers when full; readers keep the arrays they already hold."""
        needed = self._size + extra
        if needed <= len(self._rowids):
            return
        capacity = max(needed, 2 * len(self._rowids), 1024)
        matrix = np.empty((capacity, self.dim), dtype=np.float32)
        matrix[: self._size] = self._matrix[: self._size]
        rowids = np.empty(capacity, dtype=np.int64)
        rowids[: self._size] = self._rowids[: self._size]
        self._matrix, self._rowids = matrix, rowids

    def nearest(
        self, query: FloatVector, allowed_rowids: list[int] | None, limit: int
    ) -> list[tuple[str, float]]:
        """(id, cosine similarity) of the ``limit`` nearest, best first; ties go to the older
        row. ``allowed_rowids`` (None: all) restricts the search to those rows."""
        with self._lock:
            size, matrix, rowids, ids = self._size, self._matrix, self._rowids, self._ids
        norm = float(np.linalg.norm(query))
        target = (query / norm if norm else query).astype(np.float32)
        positions: Any = None
        if allowed_rowids is not None:
            wanted = np.asarray(sorted(allowed_rowids), dtype=np.int64)
            found = np.searchsorted(rowids[:size], wanted)
            inside = found < size
            found = found[inside]
            positions = found[rowids[found] == wanted[inside]]
            if positions.size == 0:
                return []
            scores = matrix[positions] @ target
        else:
            if size == 0:
                return []
            scores = matrix[:size] @ target
        count = min(limit, scores.shape[0])
        best = np.argpartition(-scores, count - 1)[:count] if count < scores.shape[0] else None
        order = np.arange(scores.shape[0]) if best is None else best
        # Stable: highest score first, then the older row (lower position).
        order = order[np.lexsort((order, -scores[order]))]
        index = order if positions is None else positions[order]
        return [(ids[int(i)], float(scores[j])) for i, j in zip(index, order, strict=True)]
