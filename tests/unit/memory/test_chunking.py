"""Long texts are split into overlapping chunks that together cover the whole text."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gemma_service.memory.chunking import chunk_text, split_into_items
from gemma_service.memory.models import MemoryItemIn

NOW = datetime(2024, 1, 1, tzinfo=UTC)


def test_short_text_is_one_item_without_a_parent() -> None:
    [item] = split_into_items(
        MemoryItemIn(text="short note"), max_chars=100, overlap=10, now=NOW, owner="local"
    )
    assert item.text == "short note" and item.parent_id is None and item.chunk_count == 1
    assert item.timestamp == NOW


def test_a_long_document_becomes_linked_chunks_with_its_metadata() -> None:
    sentences = [f"Sentence number {n} talks about topic {n}." for n in range(40)]
    document = MemoryItemIn(
        text=" ".join(sentences),
        kind="document",
        source="report.pdf",
        speaker="Sarah",
        metadata={"page": 3},
    )

    items = split_into_items(document, max_chars=200, overlap=50, now=NOW, owner="local")

    assert len(items) > 5
    assert len({item.parent_id for item in items}) == 1 and items[0].parent_id
    assert [item.chunk_index for item in items] == list(range(len(items)))
    assert all(item.chunk_count == len(items) for item in items)
    assert all(item.source == "report.pdf" and item.metadata == {"page": 3} for item in items)
    assert len({item.id for item in items}) == len(items)
    # Chunks end at sentence boundaries where there is one.
    assert all(item.text.endswith(".") for item in items)


def test_consecutive_chunks_overlap() -> None:
    text = " ".join(f"w{n}" for n in range(300))
    chunks = chunk_text(text, max_chars=120, overlap=40)
    for previous, following in itertools.pairwise(chunks):
        assert following.split()[0] in previous.split()


@given(
    text=st.text(min_size=1, max_size=3000),
    max_chars=st.integers(20, 400),
    overlap_share=st.floats(0, 0.9),
)
def test_chunks_fit_the_limit_and_lose_no_word(
    text: str, max_chars: int, overlap_share: float
) -> None:
    overlap = int(max_chars * overlap_share)
    chunks = chunk_text(text, max_chars, overlap)
    assert all(0 < len(chunk) <= max_chars for chunk in chunks)
    covered = " ".join(chunks)
    for word in text.split():
        if len(word) <= max_chars // 2:  # longer words may be cut at a chunk edge
            assert word in covered


def test_overlap_must_be_smaller_than_the_chunk() -> None:
    with pytest.raises(ValueError):
        chunk_text("x" * 100, max_chars=10, overlap=10)
