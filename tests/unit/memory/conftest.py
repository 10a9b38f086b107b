"""Shared fakes: a deterministic bag-of-words embedder and a store on a temporary SQLite file."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from gemma_service.memory.sqlite_store import SqliteMemoryStore


class HashingEmbedder:
    """Words hashed into buckets: texts sharing words point the same way. No model needed."""

    def __init__(self, dim: int = 64, name: str = "hashing-test") -> None:
        self._dim = dim
        self._name = name
        self.calls = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls += 1
        vectors = []
        for text in texts:
            vector = [0.0] * self._dim
            for word in re.findall(r"\w+", text.lower()):
                bucket = int(hashlib.sha256(word.encode()).hexdigest(), 16) % self._dim
                vector[bucket] += 1.0
            norm = math.sqrt(sum(v * v for v in vector)) or 1.0
            vectors.append([v / norm for v in vector])
        return vectors


@pytest.fixture
def embedder() -> HashingEmbedder:
    return HashingEmbedder()


@pytest.fixture
def store(tmp_path: Path, embedder: HashingEmbedder) -> Iterator[SqliteMemoryStore]:
    opened = SqliteMemoryStore(tmp_path / "memory.sqlite3", embedder.dim)
    yield opened
    opened.close()


@pytest.fixture
def embedder_class() -> type[HashingEmbedder]:
    return HashingEmbedder
