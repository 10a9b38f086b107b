"""What `gemma-service memory eval` does: load a development set into a fresh store, ask its
questions through the server's retriever, and print the per-type table."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from gemma_service.memory.devset import DevSet
from gemma_service.memory.embedder import Embedder
from gemma_service.memory.evaluation import (
    QuestionScore,
    format_latency,
    format_misses,
    format_table,
    run_questions,
)
from gemma_service.memory.models import SearchFilters
from gemma_service.memory.owners import OwnerScope
from gemma_service.memory.postgres_store import PostgresMemoryStore
from gemma_service.memory.scratch_postgres import scratch_database
from gemma_service.memory.service import MemoryService, local_retriever
from gemma_service.memory.settings import MemorySettings
from gemma_service.memory.sqlite_store import SqliteMemoryStore
from gemma_service.memory.store import MemoryStore

LOCAL = OwnerScope.local()

StoreKind = Literal["sqlite", "postgres"]


@dataclass(frozen=True)
class SetResult:
    devset: DevSet
    plain: list[QuestionScore]
    filtered: list[QuestionScore]
    store: StoreKind
    embedder: str


@contextlib.contextmanager
def scratch_store(
    kind: StoreKind, embedding_dim: int | None, server_url: str | None = None
) -> Iterator[MemoryStore]:
    """An empty store of ``kind``, removed afterwards. PostgreSQL: a new database on
    ``server_url``'s server, or in a scratch cluster when that is None."""
    store: MemoryStore
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="gemma-eval-") as tmp:
            store = SqliteMemoryStore(Path(tmp) / "memory.sqlite3", embedding_dim)
            try:
                yield store
            finally:
                store.close()
    else:
        with scratch_database(server_url) as url:
            store = PostgresMemoryStore(url, embedding_dim)
            try:
                yield store
            finally:
                store.close()


def load_into(service: MemoryService, devset: DevSet) -> dict[str, str]:
    """Store the set's memories; returns stored id -> the set's key (every chunk of a long
    memory maps to its key)."""
    key_of: dict[str, str] = {}
    short = service.settings.memory_chunk_chars
    whole = [m for m in devset.memories if len(m.item.text) <= short]
    # Memories that fit one chunk go in one batch (one id each, in order); longer ones alone.
    ids = service.ingest([m.item for m in whole], scope=LOCAL)
    key_of.update((stored_id, m.key) for stored_id, m in zip(ids, whole, strict=True))
    for labelled in devset.memories:
        if len(labelled.item.text) > short:
            key_of.update(
                (stored_id, labelled.key)
                for stored_id in service.ingest([labelled.item], scope=LOCAL)
            )
    return key_of


def evaluate_set(
    devset: DevSet,
    *,
    embedder: Embedder | None,
    settings: MemorySettings,
    store_kind: StoreKind = "sqlite",
    server_url: str | None = None,
    now: datetime | None = None,
) -> SetResult:
    """Ask every question with and without its filters against a fresh store holding the set.
    The clock is ``now``, else the set's own ``now``, else the real time."""
    moment = now or devset.now
    clock = (lambda: moment) if moment else (lambda: datetime.now(UTC))
    with scratch_store(store_kind, embedder.dim if embedder else None, server_url) as store:
        retriever = local_retriever(store, embedder, settings, clock)
        service = MemoryService(store, retriever, embedder=embedder, settings=settings, clock=clock)
        key_of = load_into(service, devset)

        def search(question: str, filters: SearchFilters, k: int) -> list[str]:
            return [hit.item.id for hit in service.search(question, filters, k, scope=LOCAL).hits]

        plain = run_questions(devset, search, key_of, with_filters=False)
        filtered = run_questions(devset, search, key_of, with_filters=True)
    return SetResult(devset, plain, filtered, store_kind, embedder.name if embedder else "none")


def format_result(result: SetResult, *, show_misses: bool = False) -> str:
    devset = result.devset
    lines = [
        f"set {devset.name}: {len(devset.memories)} memories, {len(devset.questions)} questions; "
        f"store {result.store}, embedder {result.embedder}",
        format_table(result.plain, result.filtered),
        format_latency(result.plain),
    ]
    if show_misses:
        lines += ["misses without filters:", format_misses(result.plain)]
    return "\n".join(lines)
