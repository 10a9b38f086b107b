"""Renders retrieved memories and caller documents as numbered sources the model can cite."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from gemma_service.memory.models import SearchHit

CITATION_INSTRUCTION = (
    "Numbered sources are given before the user's message. Use them when they are relevant, "
    "and cite every source you use as [n] (for example [1] or [2][3]) right after the "
    "statement it supports. Cite only the numbers given. If the sources do not answer the "
    "question, say so and answer from general knowledge without citing."
)
DEFAULT_MAX_SOURCE_CHARS = 2000


@dataclass(frozen=True)
class RagSource:
    """One numbered source, as a response reports it."""

    number: int
    id: str
    score: float | None
    origin: Literal["memory", "context"]

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.number, "id": self.id, "score": self.score, "type": self.origin}


@dataclass(frozen=True)
class RagBlock:
    """Text to place before the user's message, the instruction for the system turn, and the
    sources to report. Empty when there was nothing to inject."""

    text: str
    instruction: str
    sources: list[RagSource]

    @property
    def is_empty(self) -> bool:
        return not self.sources

    @property
    def memories_used(self) -> int:
        """The response's ``rag_context_used``: retrieved memories injected."""
        return sum(1 for source in self.sources if source.origin == "memory")


def build_rag_block(
    hits: Sequence[SearchHit],
    context_documents: Sequence[str] = (),
    *,
    max_source_chars: int = DEFAULT_MAX_SOURCE_CHARS,
) -> RagBlock:
    """Number the memories first, then the caller's documents, and render them as one block."""
    lines: list[str] = []
    sources: list[RagSource] = []
    for hit in hits:
        number = len(sources) + 1
        lines.append(f"[{number}] {describe_memory(hit)}: {clip(hit.item.text, max_source_chars)}")
        sources.append(RagSource(number, hit.item.id, round(hit.score, 6), "memory"))
    for index, document in enumerate(d for d in context_documents if d.strip()):
        number = len(sources) + 1
        lines.append(f"[{number}] (document from the request): {clip(document, max_source_chars)}")
        sources.append(RagSource(number, f"context-{index + 1}", None, "context"))
    if not sources:
        return RagBlock("", "", [])
    text = "Sources:\n" + "\n".join(lines)
    return RagBlock(text, CITATION_INSTRUCTION, sources)


def describe_memory(hit: SearchHit) -> str:
    """The parenthesised who / when / how of a memory, e.g. ``(Sarah, 2024-05-01 14:03 UTC,
    stressed)``; parts the memory lacks are left out."""
    item = hit.item
    parts = [item.speaker or "unknown speaker"]
    if item.timestamp is not None:
        parts.append(format_time(item.timestamp))
    if item.emotion:
        parts.append(f"emotion: {item.emotion}")
    if item.kind != "transcript":
        parts.append(item.kind)
    return "(" + ", ".join(parts) + ")"


def format_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M %Z").strip()


def clip(text: str, max_chars: int) -> str:
    """Whitespace collapsed to single spaces, cut at ``max_chars`` with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= max_chars else flat[: max_chars - 1].rstrip() + "…"
