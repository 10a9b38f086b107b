"""The two real embedders: the packaged all-MiniLM-L6-v2 and llama.cpp on a GGUF."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from gemma_service.config import ServiceSettings
from gemma_service.memory.embedder import (
    Embedder,
    LlamaEmbedder,
    SentenceTransformerEmbedder,
    load_embedders,
)
from gemma_service.model_files import prepare_default_model

SENTENCES = [
    "The cat sat on the mat.",
    "A kitten was resting on the rug.",
    "Quarterly revenue grew by five percent.",
]


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def check_meaningful_unit_vectors(embedder: Embedder) -> None:
    cat, kitten, revenue = embedder.embed(SENTENCES)
    assert all(len(v) == embedder.dim for v in (cat, kitten, revenue))
    assert all(math.isclose(cosine(v, v), 1.0, abs_tol=1e-3) for v in (cat, kitten, revenue))
    assert cosine(cat, kitten) > cosine(cat, revenue)
    assert embedder.embed([]) == []


def test_the_packaged_sentence_model_loads_offline_and_embeds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("sentence_transformers", reason="needs gemma-service[embeddings]")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    embedder = SentenceTransformerEmbedder()
    assert (embedder.name, embedder.dim) == ("all-MiniLM-L6-v2", 384)
    check_meaningful_unit_vectors(embedder)


@pytest.fixture(scope="module")
def gguf_path() -> Path:
    """The packaged Gemma 3 270M, assembled where `gemma-service serve` keeps it."""
    return prepare_default_model(ServiceSettings().model_cache_dir, progress=False)


def test_llama_cpp_embeds_with_any_gguf(gguf_path: Path) -> None:
    # Gemma 3 270M is a generative model, not an embedding model: this checks the llama.cpp
    # path (pooling, normalisation, determinism), not the meaning of its vectors.
    embedder = LlamaEmbedder(gguf_path, n_ctx=512)
    assert embedder.name == gguf_path.stem and embedder.dim == 640
    first, second = embedder.embed(SENTENCES[:2])
    assert len(first) == embedder.dim
    assert math.isclose(cosine(first, first), 1.0, abs_tol=1e-3)
    assert embedder.embed([SENTENCES[0]]) == [pytest.approx(first, abs=1e-4)]
    assert cosine(first, second) < 0.999
    assert embedder.embed([]) == []


def test_a_configured_gguf_is_the_memory_embedder_and_both_are_served(gguf_path: Path) -> None:
    loaded = load_embedders(sentence_model=None, gguf_path=gguf_path)
    assert loaded.for_memory is not None and loaded.for_memory.name == gguf_path.stem
    assert gguf_path.stem in loaded.by_name
