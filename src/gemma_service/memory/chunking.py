"""Long texts become overlapping chunks, each stored as its own item linked to its parent."""

from __future__ import annotations

import uuid
from datetime import datetime

from gemma_service.memory.models import MemoryItem, MemoryItemIn, new_memory_id

# Preferred places to end a chunk, best first: paragraph, line, sentence, clause; then any
# whitespace (a word boundary).
_BREAKS = ("\n\n", "\n", ". ", "? ", "! ", "; ", ", ")


def chunk_text(text: str, max_chars: int, overlap: int) -> list[str]:
    """Split ``text`` into chunks of at most ``max_chars`` that end at natural breaks where
    possible; consecutive chunks share about ``overlap`` characters."""
    if max_chars <= 0 or not 0 <= overlap < max_chars:
        raise ValueError("need max_chars > 0 and 0 <= overlap < max_chars")
    text = text.strip()
    if len(text) <= max_chars:
        return [text] if text else []
    chunks: list[str] = []
    start = 0
    while start < len(text):
        end = min(start + max_chars, len(text))
        if end < len(text):
            end = _break_before(text, start, end)
        chunk = text[start:end].strip()
        if chunk:
            chunks.append(chunk)
        if end >= len(text):
            break
        start = _next_start(text, start, end, overlap)
    return chunks


def _break_before(text: str, start: int, end: int) -> int:
    """The best break in the second half of text[start:end]; ``end`` itself if none."""
    floor = start + (end - start) // 2
    for separator in _BREAKS:
        position = text.rfind(separator, floor, end)
        if position != -1:
            return position + len(separator)
    for position in range(end - 1, floor - 1, -1):
        if text[position].isspace():
            return position + 1
    return end


def _next_start(text: str, start: int, end: int, overlap: int) -> int:
    """Where the next chunk begins: ``overlap`` characters back, moved to a word start."""
    candidate = max(end - overlap, start + 1)
    for position in range(candidate, end):
        if text[position].isspace():
            return position + 1
    return min(candidate, end)


def split_into_items(
    memory: MemoryItemIn, *, max_chars: int, overlap: int, now: datetime, owner: str
) -> list[MemoryItem]:
    """Turn one client item into ``owner``'s stored items: one, or one per chunk sharing a
    parent id."""
    chunks = chunk_text(memory.text, max_chars, overlap) or [memory.text]
    parent_id = f"doc_{uuid.uuid4().hex}" if len(chunks) > 1 else None
    return [
        MemoryItem(
            id=new_memory_id(),
            text=chunk,
            kind=memory.kind,
            timestamp=memory.timestamp or now,
            created_at=now,
            speaker=memory.speaker,
            emotion=memory.emotion,
            source=memory.source,
            conversation_id=memory.conversation_id,
            metadata=dict(memory.metadata),
            parent_id=parent_id,
            chunk_index=index,
            chunk_count=len(chunks),
            owner=owner,
        )
        for index, chunk in enumerate(chunks)
    ]
