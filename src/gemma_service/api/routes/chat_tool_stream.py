"""The SSE stream of a chat completion that may make tool calls.

Each choice's text goes through a ``ToolCallStreamParser``: plain text becomes
``delta.content``, a finished call becomes two ``delta.tool_calls`` entries (id and name, then
the arguments), which the openai SDK assembles into the same call as the non-streamed reply.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from gemma_service.api.openai_responses import chat_logprobs, openai_finish_reason
from gemma_service.api.openai_stream import ChunkWriter, failure_event
from gemma_service.api.streaming import SSE_DONE
from gemma_service.chat.service import merge_streams
from gemma_service.chat.structured import ContentDelta, StreamDelta, ToolCallStreamParser
from gemma_service.chat.structured_chat import StructuredChat
from gemma_service.engine.protocol import TokenEvent, Usage


async def tool_call_stream(
    streams: list[AsyncIterator[TokenEvent]],
    model: str,
    include_usage: bool,
    logprobs: bool,
    plan: StructuredChat,
) -> AsyncIterator[bytes]:
    """SSE chunks for a chat completion whose replies are parsed for tool calls."""
    out = ChunkWriter("chat.completion.chunk", model, include_usage)
    parsers = [plan.stream_parser() for _ in streams]
    usages: dict[int, Usage] = {}
    first_content = None if plan.forces_tool_call else ""
    for i in range(len(streams)):
        yield out.chat(i, {"role": "assistant", "content": first_content})
    async for i, event in merge_streams(streams):
        if (failure := failure_event(event)) is not None:
            yield failure
            return
        for chunk in _event_chunks(out, i, event, plan, parsers[i], logprobs):
            yield chunk
        if event.finish_reason is not None:
            assert event.usage is not None
            usages[i] = event.usage
    if include_usage:
        yield out.usage(usages)
    yield SSE_DONE


def _event_chunks(
    out: ChunkWriter,
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
        out.chat(index, body, logprobs=lp if k == 0 else None) for k, body in enumerate(bodies)
    ]
    if event.finish_reason is not None:
        reason = "tool_calls" if parser.calls else openai_finish_reason(event.finish_reason)
        chunks.append(out.chat(index, {}, reason))
    return chunks


def _delta_body(delta: StreamDelta) -> dict[str, Any]:
    if isinstance(delta, ContentDelta):
        return {"content": delta.text}
    return {"tool_calls": [delta.to_openai()]}
