"""OpenAI stream-chunk reading for the load generator (events decoded by ``gemma_service.sse``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

from gemma_service.sse import aiter_sse

ApiKind = Literal["chat", "completions"]


class StreamError(Exception):
    """The server reported an error inside the stream, or sent something unreadable."""


async def sse_payloads(lines: AsyncIterable[str]) -> AsyncIterator[str]:
    """Yield each event's data from a stream of lines, leaving out the ``[DONE]`` sentinel.

    The stream is read to its end, so the connection can be reused for the next request.
    """
    async for event in aiter_sse(lines):
        if not event.is_done:
            yield event.data


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """The parts of one streamed completion chunk the benchmark needs."""

    text: str
    completion_tokens: int | None = None
    prompt_tokens: int | None = None


def parse_chunk(data: str, api: ApiKind) -> StreamChunk:
    """Read the generated text and any usage totals from one chunk's JSON payload."""
    try:
        payload = json.loads(data)
    except json.JSONDecodeError as exc:
        raise StreamError(f"unreadable stream chunk: {data[:120]!r}") from exc
    if not isinstance(payload, dict):
        raise StreamError(f"stream chunk is not an object: {data[:120]!r}")
    if "error" in payload:
        raise StreamError(f"error in stream: {_error_message(payload['error'])}")
    return StreamChunk(
        text=_chunk_text(payload, api),
        completion_tokens=_usage_field(payload, "completion_tokens"),
        prompt_tokens=_usage_field(payload, "prompt_tokens"),
    )


def _chunk_text(payload: dict[str, Any], api: ApiKind) -> str:
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return ""  # the final usage-only chunk has no choices
    choice = choices[0]
    if api == "chat":
        delta = choice.get("delta")
        text = delta.get("content") if isinstance(delta, dict) else None
    else:
        text = choice.get("text")
    return text if isinstance(text, str) else ""


def _usage_field(payload: dict[str, Any], name: str) -> int | None:
    usage = payload.get("usage")
    if not isinstance(usage, dict):
        return None
    value = usage.get(name)
    return value if isinstance(value, int) else None


def _error_message(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message", error))
    return str(error)
