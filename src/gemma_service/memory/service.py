"""MemoryService: the one object the API, chat and CLI use for memories and embeddings."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from gemma_service.errors import InvalidRequestError, NotFoundError
from gemma_service.memory.chunking import split_into_items
from gemma_service.memory.conversations import ConversationHistory, ConversationStore
from gemma_service.memory.embedder import Embedder, load_embedders
from gemma_service.memory.models import (
    NO_FILTERS,
    MemoryItem,
    MemoryItemIn,
    MemoryRecord,
    SearchFilters,
)
from gemma_service.memory.owners import LOCAL_OWNER, OwnerScope
from gemma_service.memory.postgres_conversations import PostgresConversationStore
from gemma_service.memory.postgres_responses import PostgresResponseStore
from gemma_service.memory.postgres_store import PostgresMemoryStore
from gemma_service.memory.remote_retriever import RemoteRetriever
from gemma_service.memory.retriever import MemoryRetriever, RecencyBias, RetrievalResult, Retriever
from gemma_service.memory.settings import MemorySettings
from gemma_service.memory.sqlite_store import SqliteMemoryStore
from gemma_service.memory.store import MemoryConfigError, MemoryStore
from gemma_service.memory.stored_responses import ResponseStore, SqliteResponseStore

logger = logging.getLogger(__name__)

SQLITE_FILE_NAME = "memory.sqlite3"
EMBED_BATCH = 64


def open_store(
    url: str | None,
    data_dir: Path,
    embedding_dim: int | None,
    *,
    legacy_owner: str = LOCAL_OWNER,
) -> MemoryStore:
    """The store GEMMA_MEMORY_URL names: PostgreSQL, an SQLite file, or the default file.
    Memories stored before owners existed go to ``legacy_owner`` as it opens."""
    if url is None:
        return SqliteMemoryStore(
            data_dir / SQLITE_FILE_NAME, embedding_dim, legacy_owner=legacy_owner
        )
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresMemoryStore(url, embedding_dim, legacy_owner=legacy_owner)
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        return SqliteMemoryStore(path, embedding_dim, legacy_owner=legacy_owner)
    raise MemoryConfigError(
        f"GEMMA_MEMORY_URL must start with postgresql:// or sqlite:///, not {url.split(':')[0]!r}"
    )


def local_retriever(
    store: MemoryStore,
    embedder: Embedder | None,
    settings: MemorySettings,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Retriever:
    """The hybrid retriever over ``store`` as the settings tune it."""
    return Retriever(
        store,
        embedder,
        recency=RecencyBias(settings.rag_recency_half_life_days, settings.rag_recency_weight),
        candidates=settings.rag_candidates,
        clock=clock,
    )


def memory_not_found(item_id: str) -> NotFoundError:
    """The one answer for an id that does not exist and for another owner's id."""
    return NotFoundError(f"no memory with id {item_id!r}", param="id")


def open_conversation_store(
    url: str | None, data_dir: Path, *, legacy_owner: str
) -> ConversationHistory:
    """Server-side conversations: in PostgreSQL when GEMMA_MEMORY_URL names it (so any replica
    continues any conversation), else in SQLite in the data directory."""
    if url is not None and url.startswith(("postgresql://", "postgres://")):
        return PostgresConversationStore(url)
    return ConversationStore.in_data_dir(data_dir, legacy_owner=legacy_owner)


def open_response_store(url: str | None, data_dir: Path) -> ResponseStore:
    """Stored responses: in PostgreSQL when GEMMA_MEMORY_URL names it (shared by replicas),
    else in SQLite beside the conversations."""
    if url is not None and url.startswith(("postgresql://", "postgres://")):
        return PostgresResponseStore(url)
    return SqliteResponseStore.in_data_dir(data_dir)


class MemoryService:
    """Stores memories (chunked and embedded), searches them, and serves embeddings."""

    def __init__(
        self,
        store: MemoryStore,
        retriever: MemoryRetriever,
        *,
        embedder: Embedder | None,
        embedders: dict[str, Embedder] | None = None,
        settings: MemorySettings | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.retriever = retriever
        self.embedder = embedder
        self.embedders = embedders if embedders is not None else {}
        if embedder is not None:
            self.embedders.setdefault(embedder.name, embedder)
        self.settings = settings or MemorySettings()
        self._clock = clock

    @classmethod
    def from_settings(
        cls, settings: MemorySettings, *, data_dir: Path, rag_service_url: str | None
    ) -> MemoryService:
        """Load the embedders, open the store and pick the retriever; warns once when memory
        will search words only."""
        loaded = load_embedders(
            sentence_model=settings.embedding_model, gguf_path=settings.embedding_model_path
        )
        embedder = loaded.for_memory
        store = open_store(
            settings.memory_url,
            data_dir,
            embedder.dim if embedder else None,
            legacy_owner=settings.legacy_owner,
        )
        retriever: MemoryRetriever
        if rag_service_url:
            retriever = RemoteRetriever(rag_service_url, timeout_s=settings.rag_timeout_s)
        else:
            retriever = local_retriever(store, embedder, settings)
        return cls(store, retriever, embedder=embedder, embedders=loaded.by_name, settings=settings)

    @property
    def lexical_only(self) -> bool:
        return self.embedder is None

    def ingest(self, items: Sequence[MemoryItemIn], *, scope: OwnerScope) -> list[str]:
        """Chunk, embed and store ``items`` as the scope's owner's, in one transaction; the
        stored ids, in order (a chunked document yields one id per chunk)."""
        now = self._clock()
        stored: list[MemoryItem] = []
        for memory in items:
            stored.extend(
                split_into_items(
                    memory,
                    max_chars=self.settings.memory_chunk_chars,
                    overlap=self.settings.memory_chunk_overlap,
                    now=now,
                    owner=scope.owner,
                )
            )
        embeddings = self._embed_items(stored)
        return self.store.add([MemoryRecord(i, e) for i, e in zip(stored, embeddings, strict=True)])

    def _embed_items(self, items: Sequence[MemoryItem]) -> list[list[float] | None]:
        if self.embedder is None:
            return [None] * len(items)
        vectors: list[list[float] | None] = []
        for start in range(0, len(items), EMBED_BATCH):
            batch = items[start : start + EMBED_BATCH]
            vectors.extend(self.embedder.embed([item.text for item in batch]))
        return vectors

    def search(
        self,
        query: str,
        filters: SearchFilters = NO_FILTERS,
        top_k: int | None = None,
        *,
        scope: OwnerScope,
    ) -> RetrievalResult:
        return self.retriever.search(query, filters, top_k or self.settings.rag_top_k, scope=scope)

    def get(self, item_id: str, *, scope: OwnerScope) -> MemoryItem:
        """The item, or 404; another owner's item is missing, not forbidden, so a caller cannot
        tell it exists."""
        item = self.store.get(item_id, scope=scope)
        if item is None:
            raise memory_not_found(item_id)
        return item

    def delete(self, item_id: str, *, scope: OwnerScope) -> None:
        if not self.store.delete(item_id, scope=scope):
            raise memory_not_found(item_id)

    def embed(
        self, texts: Sequence[str], model: str | None = None
    ) -> tuple[str, list[list[float]]]:
        """Vectors for /v1/embeddings from the named embedder (default: the memory's)."""
        embedder = self.embedders.get(model) if model else self.embedder
        if embedder is None:
            available = ", ".join(sorted(self.embedders)) or "none installed"
            raise InvalidRequestError(
                f"unknown embedding model {model!r} (available: {available})"
                if model
                else "no embedding model is available on this server",
                param="model",
                code="model_not_found",
            )
        return embedder.name, embedder.embed(texts)

    def close(self) -> None:
        close_remote = getattr(self.retriever, "close", None)
        if callable(close_remote):
            close_remote()
        self.store.close()
