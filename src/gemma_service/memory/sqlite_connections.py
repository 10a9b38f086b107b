"""Per-thread SQLite connections in WAL mode with durable, lock-first write transactions."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from gemma_service.memory.store import MemoryConfigError

BUSY_TIMEOUT_S = 30.0


class SqliteConnections:
    """Hands each thread its own connection to one database file; closes them all at once."""

    def __init__(
        self, path: Path, on_connect: Callable[[sqlite3.Connection], None] | None = None
    ) -> None:
        self.path = path
        self._on_connect = on_connect
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = self.connection().execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            self.close()
            raise MemoryConfigError(f"{path}: SQLite could not switch to WAL mode")

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (autocommit; use ``write()`` for transactions)."""
        if self._closed:
            raise RuntimeError(f"{self.path} is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        # FULL fsyncs the WAL at every commit: once a write returns, it is on disk.
        conn.execute("PRAGMA synchronous = FULL")
        if self._on_connect is not None:
            self._on_connect(conn)
        self._local.conn = conn
        with self._lock:
            self._connections.append(conn)
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, committed when the block ends, rolled back if it raises."""
        conn = self.connection()
        # IMMEDIATE takes the write lock up front, so concurrent writers wait (busy timeout)
        # instead of failing when a read transaction would have to be upgraded.
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def run_script(self, script: str) -> None:
        """Run schema statements (may contain triggers) in one transaction."""
        self.connection().executescript(f"BEGIN IMMEDIATE;{script}COMMIT;")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for conn in self._connections:
                conn.close()
            self._connections.clear()
