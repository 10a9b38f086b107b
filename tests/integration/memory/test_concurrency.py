"""Eight threads writing while others search must lose nothing and raise nothing."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from gemma_service.memory.models import MemoryItem, MemoryRecord, SearchFilters, new_memory_id
from gemma_service.memory.owners import OwnerScope
from gemma_service.memory.store import MemoryStore

LOCAL = OwnerScope.local()

StoreFactory = Callable[[int | None], MemoryStore]
WRITERS, READERS, BATCHES, BATCH_SIZE = 8, 4, 20, 5


def write_batches(store: MemoryStore, writer: int) -> list[str]:
    ids: list[str] = []
    for batch in range(BATCHES):
        now = datetime.now(UTC)
        records = [
            MemoryRecord(
                MemoryItem(
                    id=new_memory_id(),
                    text=f"writer{writer} batch {batch} line {line} shared words",
                    kind="transcript",
                    timestamp=now,
                    created_at=now,
                    speaker=f"speaker{writer}",
                    owner="local",
                ),
                [float(writer + 1), float(batch + 1), float(line + 1)],
            )
            for line in range(BATCH_SIZE)
        ]
        ids.extend(store.add(records))
    return ids


def read_until(store: MemoryStore, stop: threading.Event) -> int:
    searches = 0
    while not stop.is_set():
        hits = store.lexical_search("shared words", SearchFilters(), 20, scope=LOCAL)
        store.vector_search([1.0, 1.0, 1.0], SearchFilters(speaker="speaker3"), 10, scope=LOCAL)
        store.get_many([h.id for h in hits], scope=LOCAL)
        store.count()
        searches += 1
    return searches


def test_concurrent_writers_and_readers_lose_nothing(store_factory: StoreFactory) -> None:
    store = store_factory(3)
    stop = threading.Event()
    with ThreadPoolExecutor(WRITERS + READERS) as pool:
        readers = [pool.submit(read_until, store, stop) for _ in range(READERS)]
        writers = [pool.submit(write_batches, store, w) for w in range(WRITERS)]
        written = [item_id for future in writers for item_id in future.result(timeout=240)]
        stop.set()
        searches = [future.result(timeout=60) for future in readers]

    assert all(count > 0 for count in searches)
    assert len(set(written)) == WRITERS * BATCHES * BATCH_SIZE
    assert store.count() == len(written)
    assert set(store.get_many(written, scope=LOCAL)) == set(written)
    for writer in range(WRITERS):
        found = store.lexical_search(f"writer{writer}", SearchFilters(), 1000, scope=LOCAL)
        assert len(found) == BATCHES * BATCH_SIZE
