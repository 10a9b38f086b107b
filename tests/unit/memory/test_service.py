"""MemoryService: ingest (chunk + embed + store), search, get/delete, embeddings, wiring."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gemma_service.errors import InvalidRequestError, NotFoundError
from gemma_service.memory.models import MemoryItemIn, SearchFilters
from gemma_service.memory.owners import OwnerScope
from gemma_service.memory.remote_retriever import RemoteRetriever
from gemma_service.memory.retriever import Retriever
from gemma_service.memory.service import MemoryService, open_store
from gemma_service.memory.settings import MemorySettings
from gemma_service.memory.sqlite_store import SqliteMemoryStore
from gemma_service.memory.store import MemoryConfigError

LOCAL = OwnerScope.local()


@pytest.fixture
def service(store: SqliteMemoryStore, embedder: Any) -> Iterator[MemoryService]:
    settings = MemorySettings(memory_chunk_chars=200, memory_chunk_overlap=40)
    yield MemoryService(store, Retriever(store, embedder), embedder=embedder, settings=settings)


def test_ingested_memories_are_found_by_search_and_get(service: MemoryService) -> None:
    ids = service.ingest(
        [
            MemoryItemIn(text="Sarah: the report is due Friday", speaker="Sarah"),
            MemoryItemIn(text="Tom: lunch at noon?", speaker="Tom"),
        ],
        scope=LOCAL,
    )

    result = service.search("report due", SearchFilters(), top_k=1, scope=LOCAL)

    assert [hit.item.id for hit in result.hits] == [ids[0]]
    assert result.hits[0].vector_rank == 1 and result.hits[0].lexical_rank == 1
    assert service.get(ids[1], scope=LOCAL).speaker == "Tom"


def test_a_long_document_is_stored_as_chunks_each_searchable(service: MemoryService) -> None:
    text = " ".join(f"Paragraph {n} explains step {n} of the procedure." for n in range(30))
    ids = service.ingest(
        [MemoryItemIn(text=text, kind="document", source="manual.pdf")], scope=LOCAL
    )

    assert len(ids) > 3
    chunks = [service.get(i, scope=LOCAL) for i in ids]
    assert len({c.parent_id for c in chunks}) == 1
    hit = service.search("step 27", top_k=1, scope=LOCAL).hits[0]
    assert "step 27" in hit.item.text and hit.item.source == "manual.pdf"


def test_missing_ids_are_not_found_errors(service: MemoryService) -> None:
    [item_id] = service.ingest([MemoryItemIn(text="temporary")], scope=LOCAL)
    service.delete(item_id, scope=LOCAL)
    with pytest.raises(NotFoundError):
        service.get(item_id, scope=LOCAL)
    with pytest.raises(NotFoundError):
        service.delete(item_id, scope=LOCAL)


def test_embeddings_come_from_the_named_model(service: MemoryService, embedder: Any) -> None:
    name, vectors = service.embed(["a", "b"], model=embedder.name)
    assert name == embedder.name and len(vectors) == 2 and len(vectors[0]) == embedder.dim
    assert service.embed(["a"])[0] == embedder.name
    with pytest.raises(InvalidRequestError) as error:
        service.embed(["a"], model="text-embedding-3-large")
    assert error.value.param == "model" and embedder.name in error.value.message


def test_without_an_embedder_memory_works_on_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "gemma_service.memory.embedder.sentence_transformers_installed", lambda: False
    )
    service = MemoryService.from_settings(MemorySettings(), data_dir=tmp_path, rag_service_url=None)

    [item_id] = service.ingest([MemoryItemIn(text="buy oat milk")], scope=LOCAL)

    assert service.lexical_only
    assert [hit.item.id for hit in service.search("milk", scope=LOCAL).hits] == [item_id]
    assert (tmp_path / "memory.sqlite3").is_file()
    with pytest.raises(InvalidRequestError):
        service.embed(["x"])
    service.close()


def test_a_rag_service_url_sends_searches_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "gemma_service.memory.embedder.sentence_transformers_installed", lambda: False
    )
    service = MemoryService.from_settings(
        MemorySettings(rag_timeout_s=0.5), data_dir=tmp_path, rag_service_url="http://127.0.0.1:9"
    )
    assert isinstance(service.retriever, RemoteRetriever)
    result = service.search("anything", scope=LOCAL)
    assert result.hits == [] and result.warning
    service.close()


def test_memory_urls_pick_the_backend(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/custom.sqlite3", tmp_path, None)
    assert isinstance(store, SqliteMemoryStore) and store.path == tmp_path / "custom.sqlite3"
    store.close()
    with pytest.raises(MemoryConfigError, match="postgresql://"):
        open_store("mysql://db", tmp_path, None)
