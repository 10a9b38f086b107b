"""Numbered sources for the prompt, and what the response reports about them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gemma_service.memory.models import MemoryItem, SearchHit
from gemma_service.memory.rag_prompt import build_rag_block

WHEN = datetime(2024, 5, 1, 14, 3, tzinfo=UTC)


def hit(item_id: str, text: str, score: float, **fields: Any) -> SearchHit:
    item = MemoryItem(
        id=item_id, text=text, kind="transcript", timestamp=WHEN, created_at=WHEN, **fields
    )
    return SearchHit(item=item, score=score)


def test_memories_then_context_documents_are_numbered_with_who_when_and_emotion() -> None:
    block = build_rag_block(
        [
            hit("mem_a", "We need the report by Friday.", 0.9, speaker="Sarah", emotion="stressed"),
            hit("mem_b", "Sounds good.", 0.5),
        ],
        ["Company handbook: reports go to finance."],
    )

    assert block.text.splitlines() == [
        "Sources:",
        "[1] (Sarah, 2024-05-01 14:03 UTC, emotion: stressed): We need the report by Friday.",
        "[2] (unknown speaker, 2024-05-01 14:03 UTC): Sounds good.",
        "[3] (document from the request): Company handbook: reports go to finance.",
    ]
    assert "[n]" in block.instruction
    assert [s.to_dict() for s in block.sources] == [
        {"index": 1, "id": "mem_a", "score": 0.9, "type": "memory"},
        {"index": 2, "id": "mem_b", "score": 0.5, "type": "memory"},
        {"index": 3, "id": "context-1", "score": None, "type": "context"},
    ]
    assert block.memories_used == 2


def test_nothing_to_inject_gives_an_empty_block() -> None:
    block = build_rag_block([], ["   "])
    assert block.is_empty and block.text == "" and block.instruction == ""
    assert block.memories_used == 0


def test_long_sources_are_clipped_and_flattened_to_one_line() -> None:
    block = build_rag_block(
        [hit("m", "line one\n\nline two " + "x" * 500, 1.0)], max_source_chars=40
    )
    [line] = block.text.splitlines()[1:]
    assert line.endswith("…")
    assert "line one line two" in line
    assert len(line.split(": ", 1)[1]) == 40
