"""The SSE stream of a chat completion that may make tool calls.

Each choice's text goes through a ``ToolCallStreamParser``: plain text becomes
``delta.content``, a finished call becomes two ``delta.tool_calls`` entries (id and name, then
the arguments), which the openai SDK assembles into the same call as the non-streamed reply.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from gemma_service.api.error_handlers import sse_error
from gemma_service.api.openai_responses import (
    chat_chunk,
    chat_logprobs,
    error_for_finish,
    new_id,
    openai_finish_reason,
    usage_body,
)
from gemma_service.api.streaming import SSE_DONE, sse
from gemma_service.chat.service import Completion, merge_streams
from gemma_service.chat.structured import ContentDelta, StreamDelta, ToolCallStreamParser
from gemma_service.chat.structured_chat import StructuredChat
from gemma_service.engine.protocol import TokenEvent, Usage


class _ChunkWriter:
    """Frames ``chat.completion.chunk`` events of one response."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self.cid, self.created = new_id("chatcmpl"), int(time.time())
        self.model = model
        self.include_usage = include_usage

    def chunk(
        self,
        index: int,
        delta: dict[str, Any],
        finish_reason: str | None = None,
        logprobs: dict[str, Any] | None = None,
    ) -> bytes:
        body = chat_chunk(self.cid, self.created, self.model, index, delta, finish_reason, logprobs)
        if self.include_usage:
            body["usage"] = None
        return sse(body)

    def usage(self, usages: list[Usage]) -> bytes:
        return sse(
            {
                "id": self.cid,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": usage_body(usages),
            }
        )


async def tool_call_stream(
    streams: list[AsyncIterator[TokenEvent]],
    model: str,
    include_usage: bool,
    logprobs: bool,
    plan: StructuredChat,
) -> AsyncIterator[bytes]:
    """SSE chunks for a chat completion whose replies are parsed for tool calls."""
    out = _ChunkWriter(model, include_usage)
    parsers = [plan.stream_parser() for _ in streams]
    usages: dict[int, Usage] = {}
    first_content = None if plan.forces_tool_call else ""
    for i in range(len(streams)):
        yield out.chunk(i, {"role": "assistant", "content": first_content})
    async for i, event in merge_streams(streams):
        if event.finish_reason in ("timeout", "error"):
            assert event.usage is not None
            err = error_for_finish(
                Completion("", event.finish_reason, event.usage, error=event.error)
            )
            assert err is not None
            yield sse_error(err)
            return
        for chunk in _event_chunks(out, i, event, plan, parsers[i], logprobs):
            yield chunk
        if event.finish_reason is not None:
            assert event.usage is not None
            usages[i] = event.usage
    if include_usage:
        yield out.usage([usages[k] for k in sorted(usages)])
    yield SSE_DONE


def _event_chunks(
    out: _ChunkWriter,
    index: int,
    event: TokenEvent,
    plan: StructuredChat,
    parser: ToolCallStreamParser,
    logprobs: bool,
) -> list[bytes]:
    """The chunks one engine event turns into (content held back by the parser sends none)."""
    deltas = parser.feed(event.text)
    if event.finish_reason is not None:
        deltas += plan.finish_stream(parser)
    lp = chat_logprobs(event.logprobs) if logprobs and event.logprobs else None
    bodies = [_delta_body(d) for d in deltas] or ([{}] if lp else [])
    chunks = [
        out.chunk(index, body, logprobs=lp if k == 0 else None) for k, body in enumerate(bodies)
    ]
    if event.finish_reason is not None:
        reason = "tool_calls" if parser.calls else openai_finish_reason(event.finish_reason)
        chunks.append(out.chunk(index, {}, reason))
    return chunks


def _delta_body(delta: StreamDelta) -> dict[str, Any]:
    if isinstance(delta, ContentDelta):
        return {"content": delta.text}
    return {"tool_calls": [delta.to_openai()]}
