"""Hybrid retrieval finds more of a labelled set than words or vectors alone (recall@5).

Run with ``-s`` to see the table recorded in docs/memory.md."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gemma_service.memory.embedder import SentenceTransformerEmbedder
from gemma_service.memory.models import MemoryItemIn, SearchFilters
from gemma_service.memory.owners import OwnerScope
from gemma_service.memory.retriever import RecencyBias, Retriever
from gemma_service.memory.service import MemoryService
from gemma_service.memory.sqlite_store import SqliteMemoryStore

LOCAL = OwnerScope.local()

LABELLED_SET = Path(__file__).parent / "data" / "labelled_set.json"
K = 5
LabelledSet = dict[str, Any]


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[MemoryService, LabelledSet]]:
    pytest.importorskip("sentence_transformers", reason="needs gemma-service[embeddings]")
    embedder = SentenceTransformerEmbedder()
    labelled = json.loads(LABELLED_SET.read_text())
    store = SqliteMemoryStore(tmp_path_factory.mktemp("recall") / "m.sqlite3", embedder.dim)
    # All memories share one time and the bias is off: this measures relevance alone.
    retriever = Retriever(store, embedder, recency=RecencyBias(half_life_days=0))
    memory = MemoryService(store, retriever, embedder=embedder)
    when = datetime(2024, 6, 1, tzinfo=UTC)
    items = [
        MemoryItemIn(text=m["text"], speaker=m["speaker"], timestamp=when, kind="transcript")
        for m in labelled["memories"]
    ]
    ids = memory.ingest(items, scope=LOCAL)
    labelled["id_to_key"] = {i: m["key"] for i, m in zip(ids, labelled["memories"], strict=True)}
    yield memory, labelled
    memory.close()


def recall_at_k(
    labelled: LabelledSet, search: Callable[[str], list[str]], group: str = ""
) -> float:
    """Mean over queries (of one group, if given) of the share of relevant memories among the
    first K results."""
    cases = [c for c in labelled["queries"] if group in ("", query_group(c))]
    total = 0.0
    for case in cases:
        found = {labelled["id_to_key"][i] for i in search(case["query"])[:K]}
        total += len(found & set(case["relevant"])) / len(case["relevant"])
    return total / len(cases)


def query_group(case: dict[str, Any]) -> str:
    """'paraphrase' when the answer shares no content word with the query, else 'identifier'."""
    return "paraphrase" if case["relevant"][0].startswith("p-") else "identifier"


def test_hybrid_beats_lexical_and_vector_alone(service: tuple[MemoryService, LabelledSet]) -> None:
    memory, labelled = service
    assert memory.embedder is not None
    no_filters = SearchFilters()

    def lexical(query: str) -> list[str]:
        return [r.id for r in memory.store.lexical_search(query, no_filters, K, scope=LOCAL)]

    def vector(query: str) -> list[str]:
        [embedding] = memory.embedder.embed([query])  # type: ignore[union-attr]
        return [r.id for r in memory.store.vector_search(embedding, no_filters, K, scope=LOCAL)]

    def hybrid(query: str) -> list[str]:
        return [hit.item.id for hit in memory.search(query, top_k=K, scope=LOCAL).hits]

    searches = {"lexical": lexical, "vector": vector, "hybrid": hybrid}
    scores = {name: recall_at_k(labelled, search) for name, search in searches.items()}
    print(f"\nrecall@{K}, {len(labelled['memories'])} memories, embedder {memory.embedder.name}")
    print(f"  {'':8s} {'all':>6s} {'paraphrase':>11s} {'identifier':>11s}")
    for name, search in searches.items():
        by_group = [recall_at_k(labelled, search, g) for g in ("paraphrase", "identifier")]
        print(f"  {name:8s} {scores[name]:6.3f} {by_group[0]:11.3f} {by_group[1]:11.3f}")

    assert scores["hybrid"] > scores["lexical"]
    assert scores["hybrid"] > scores["vector"]
