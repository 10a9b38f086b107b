"""A write that returned survives a kill -9 of the process that made it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from gemma_service.memory.models import SearchFilters
from gemma_service.memory.owners import OwnerScope
from gemma_service.memory.sqlite_store import SqliteMemoryStore

LOCAL = OwnerScope.local()

WRITER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from pathlib import Path
    from gemma_service.memory.models import MemoryItem, MemoryRecord, new_memory_id
    from gemma_service.memory.sqlite_store import SqliteMemoryStore

    store = SqliteMemoryStore(Path(sys.argv[1]), embedding_dim=2)
    n = 0
    while True:  # writes until killed; each id is printed only after add() returned
        now = datetime.now(UTC)
        item = MemoryItem(id=new_memory_id(), text=f"durable line {n}", kind="note",
                          timestamp=now, created_at=now, owner="local")
        [item_id] = store.add([MemoryRecord(item, [1.0, float(n)])])
        print(item_id, flush=True)
        n += 1
    """
)
ACKS_BEFORE_KILL = 40


def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    database = tmp_path / "memory.sqlite3"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(database)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    acknowledged: list[str] = []
    try:
        while len(acknowledged) < ACKS_BEFORE_KILL:
            line = writer.stdout.readline()
            assert line, f"writer died early: {writer.stderr.read() if writer.stderr else ''}"
            acknowledged.append(line.strip())
        # Killed while it is in the middle of further writes.
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.kill()
        writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL

    store = SqliteMemoryStore(database, embedding_dim=2)
    try:
        found = store.get_many(acknowledged, scope=LOCAL)
        assert set(found) == set(acknowledged)
        assert store.count() >= ACKS_BEFORE_KILL
        # The index and the vectors were committed with the rows, not after them.
        total = store.count()
        assert len(store.lexical_search("durable", SearchFilters(), 10_000, scope=LOCAL)) == total
        assert len(store.vector_search([1.0, 0.0], SearchFilters(), 10_000, scope=LOCAL)) == total
    finally:
        store.close()
