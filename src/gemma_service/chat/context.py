"""What a chat request is answered from: stored history, retrieved memories, caller documents.

``ChatContextBuilder.assemble`` turns a request's new messages into the full message list: the
conversation's stored turns first (the oldest summarized or dropped when they would not fit the
context), then the new messages, with numbered sources injected before the last user message
and an instruction to cite them. ``remember`` stores the finished turn.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from gemma_service.chat.job import MemoryOptions
from gemma_service.chat.prompt import Message
from gemma_service.memory.conversations import (
    ConversationHistory,
    ConversationMessage,
    Role,
    fit_history,
)
from gemma_service.memory.models import NO_FILTERS, SearchHit
from gemma_service.memory.owners import OwnerScope
from gemma_service.memory.rag_prompt import RagBlock, build_rag_block, clip
from gemma_service.memory.service import MemoryService

log = logging.getLogger(__name__)

# Tokens a turn costs beyond its text: <start_of_turn>, the role line, <end_of_turn>, newline.
TURN_OVERHEAD_TOKENS = 5
Summarizer = Callable[[list[Message]], Awaitable[str]]


@dataclass(slots=True)
class AssembledChat:
    """The messages to prompt with, and what the response reports about how they were made."""

    messages: list[Message]
    new_messages: list[Message]
    conversation_id: str | None = None
    scope: OwnerScope | None = None  # whose memories and conversation these are
    sources: list[dict[str, Any]] = field(default_factory=list)
    rag_context_used: int = 0
    retrieval_time_s: float = 0.0
    warnings: list[str] = field(default_factory=list)
    history: dict[str, Any] | None = None


class ChatContextBuilder:
    """Assembles history + memories + documents for a request, and stores finished turns."""

    def __init__(
        self,
        memory: MemoryService | None,
        conversations: ConversationHistory | None,
        count_tokens: Callable[[str], int],
        n_ctx: int,
        on_retrieval: Callable[[float], None] | None = None,
    ) -> None:
        self._on_retrieval = on_retrieval
        self._memory = memory
        self._conversations = conversations
        self._count = count_tokens
        self._n_ctx = n_ctx

    async def assemble(
        self,
        messages: list[Message],
        req: MemoryOptions,
        max_tokens: int,
        summarize: Summarizer | None = None,
        *,
        scope: OwnerScope | None,
    ) -> AssembledChat:
        """The request's messages with its history and sources; memories and the conversation
        are ``scope``'s (a request that uses either must have one)."""
        if scope is None and (req.use_rag or req.conversation_id):
            raise ValueError("a request that uses memory or a conversation needs its caller")
        out = AssembledChat(list(messages), list(messages), req.conversation_id, scope)
        hits = await self._retrieve(out, req)
        block = build_rag_block(hits, req.context_documents)
        if req.conversation_id and self._conversations is not None:
            reserved = self._cost(out.messages) + self._count(block.text) + max_tokens + 64
            history = await self._history(
                req.conversation_id, self._n_ctx - reserved, summarize, out
            )
            out.messages = history + out.messages
        if not block.is_empty:
            out.messages = _inject(out.messages, block)
            out.sources = source_dicts(hits, req.context_documents)
            out.rag_context_used = block.memories_used
        return out

    async def _retrieve(self, out: AssembledChat, req: MemoryOptions) -> list[SearchHit]:
        hits: list[SearchHit] = []
        if req.use_rag and out.scope is not None:
            query = _last_user_text(out.messages)
            if self._memory is None:
                out.warnings.append("memory is not available on this server")
            elif query:
                result = await asyncio.to_thread(
                    self._memory.search, query, NO_FILTERS, req.rag_top_k, scope=out.scope
                )
                hits = result.hits
                out.retrieval_time_s = result.elapsed_s
                if self._on_retrieval is not None:
                    self._on_retrieval(result.elapsed_s)
                if result.warning:
                    out.warnings.append(result.warning)
        return hits

    async def _history(
        self,
        conversation_id: str,
        budget: int,
        summarize: Summarizer | None,
        out: AssembledChat,
    ) -> list[Message]:
        assert self._conversations is not None and out.scope is not None
        # A conversation is one owner's, whatever an admin's reach (memory/owners.py).
        owner = out.scope.owner
        stored = await asyncio.to_thread(self._conversations.load, conversation_id, owner=owner)
        kept, dropped = fit_history(stored, lambda m: self._turn_cost(m.content), max(0, budget))
        note: dict[str, Any] = {
            "turns": len(stored),
            "kept": len(kept),
            "dropped": len(dropped),
            "summarized": False,
        }
        out.history = note
        history = [Message(m.role, m.content) for m in kept]
        if not dropped:
            return history
        summary = await self._summarize(dropped, summarize)
        if summary and self._turn_cost(summary) + self._cost(history) <= budget:
            await asyncio.to_thread(
                self._conversations.replace_with_summary,
                conversation_id,
                len(dropped),
                summary,
                owner=owner,
            )
            note["summarized"] = True
            return [Message("system", f"Summary of the earlier conversation: {summary}"), *history]
        out.warnings.append(f"{len(dropped)} older turns were dropped to fit the context")
        return history

    async def _summarize(
        self, dropped: Sequence[ConversationMessage], summarize: Summarizer | None
    ) -> str:
        if summarize is None:
            return ""
        try:
            return (await summarize([Message(m.role, m.content) for m in dropped])).strip()
        except Exception as exc:  # the chat goes on without a summary: oldest turns dropped
            log.warning("summarizing conversation history failed: %s", exc)
            return ""

    async def remember(self, chat: AssembledChat, reply: str) -> None:
        """Store the request's new messages and the model's reply in its conversation."""
        if not chat.conversation_id or self._conversations is None or chat.scope is None:
            return
        turns = [
            ConversationMessage(cast(Role, m.role), m.content)
            for m in chat.new_messages
            if m.role in ("user", "assistant", "system")
        ]
        turns.append(ConversationMessage("assistant", reply))
        started = time.perf_counter()
        await asyncio.to_thread(
            self._conversations.extend, chat.conversation_id, turns, owner=chat.scope.owner
        )
        log.debug("stored %d turns in %.3fs", len(turns), time.perf_counter() - started)

    def _turn_cost(self, text: str) -> int:
        return self._count(text) + TURN_OVERHEAD_TOKENS

    def _cost(self, messages: Sequence[Message]) -> int:
        return sum(self._turn_cost(m.content) for m in messages)


def _last_user_text(messages: Sequence[Message]) -> str:
    return next((m.content for m in reversed(messages) if m.role == "user"), "")


def _inject(messages: list[Message], block: RagBlock) -> list[Message]:
    """Sources go right before the last user message; the citation rule joins the system turn."""
    out = list(messages)
    last_user = max((i for i, m in enumerate(out) if m.role == "user"), default=None)
    if last_user is None:
        out.append(Message("user", block.text))
    else:
        out[last_user] = Message("user", f"{block.text}\n\n{out[last_user].content}")
    return [Message("system", block.instruction), *out]


def source_dicts(hits: Sequence[SearchHit], documents: Sequence[str]) -> list[dict[str, Any]]:
    """Sources as responses report them, numbered as in the prompt (memories, then documents)."""
    out: list[dict[str, Any]] = []
    for hit in hits:
        item = hit.item
        out.append(
            {
                "n": len(out) + 1,
                "type": "memory",
                "id": item.id,
                "score": round(hit.score, 6),
                "text": clip(item.text, 500),
                "speaker": item.speaker,
                "kind": item.kind,
                "timestamp": item.timestamp.isoformat() if item.timestamp else None,
                "emotion": item.emotion,
            }
        )
    for i, doc in enumerate(d for d in documents if d.strip()):
        out.append(
            {
                "n": len(out) + 1,
                "type": "context",
                "id": f"context-{i + 1}",
                "score": None,
                "text": clip(doc, 500),
            }
        )
    return out
