"""sqlite-vec (where this Python can load it) and the numpy fallback rank vectors the same."""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gemma_service.memory.models import MemoryItem, MemoryRecord, SearchFilters, new_memory_id
from gemma_service.memory.owners import OwnerScope
from gemma_service.memory.sqlite_store import SqliteMemoryStore
from gemma_service.memory.sqlite_vectors import try_load_sqlite_vec

LOCAL = OwnerScope.local()

DIM = 16


def sqlite_vec_unavailable() -> str | None:
    conn = sqlite3.connect(":memory:")
    try:
        return try_load_sqlite_vec(conn)
    finally:
        conn.close()


def fill(path: Path) -> list[float]:
    rng = random.Random(7)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    store = SqliteMemoryStore(path, DIM, vector_engine="numpy")
    records = [
        MemoryRecord(
            MemoryItem(
                id=new_memory_id(),
                text=f"item {n}",
                kind="note",
                timestamp=start + timedelta(days=n),
                created_at=start,
                speaker="Sarah" if n % 3 else "Tom",
                owner="local",
            ),
            [rng.gauss(0, 1) for _ in range(DIM)],
        )
        for n in range(200)
    ]
    store.add(records)
    store.close()
    return [rng.gauss(0, 1) for _ in range(DIM)]


@pytest.mark.parametrize(
    "filters",
    [SearchFilters(), SearchFilters(speaker="Tom", since=datetime(2024, 2, 1, tzinfo=UTC))],
)
def test_both_engines_return_the_same_neighbours(tmp_path: Path, filters: SearchFilters) -> None:
    reason = sqlite_vec_unavailable()
    if reason:
        pytest.skip(f"sqlite-vec cannot be loaded here: {reason}")
    query = fill(tmp_path / "m.sqlite3")
    results = {}
    for engine in ("sqlite-vec", "numpy"):
        store = SqliteMemoryStore(tmp_path / "m.sqlite3", DIM, vector_engine=engine)
        assert store.vector_engine == engine
        results[engine] = store.vector_search(query, filters, 10, scope=LOCAL)
        store.close()

    assert [r.id for r in results["sqlite-vec"]] == [r.id for r in results["numpy"]]
    for a, b in zip(results["sqlite-vec"], results["numpy"], strict=True):
        assert a.score == pytest.approx(b.score, abs=1e-5)
