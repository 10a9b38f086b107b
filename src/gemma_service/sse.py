"""Server-sent events, both ways: the one writer (server side) and the one reader (clients).

Used by the API's streams, the GPU coordinator's ``/events``, the Python client, the benchmark's
load generator and the lease client. The reader follows the WHATWG rules that matter here:
``event:`` names an event, several ``data:`` lines join with newlines, a blank line ends the
event, lines starting with ``:`` are comments (keep-alives), one space after the colon is
dropped, and ``\\r\\n`` line ends are accepted.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

DONE_DATA = "[DONE]"
# The OpenAI streams' last event.
SSE_DONE = b"data: [DONE]\n\n"
MEDIA_TYPE = "text/event-stream"
# No caching, and no buffering by nginx-style proxies: each event goes out as it is written.
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse_event(data: str, event: str | None = None) -> bytes:
    """One event; ``data`` may hold newlines (each line becomes its own ``data:`` field)."""
    head = f"event: {event}\n" if event else ""
    body = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"{head}{body}\n".encode()


def sse_json(payload: Any, event: str | None = None) -> bytes:
    """One event whose data is ``payload`` as JSON (non-ASCII kept as is)."""
    return sse_event(json.dumps(payload, ensure_ascii=False), event)


def sse_comment(text: str) -> bytes:
    """A comment line: ignored by readers, keeps idle connections and proxies alive."""
    return f": {text}\n\n".encode()


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One received event: its name (``message`` unless named) and its data."""

    data: str
    event: str = "message"

    @property
    def is_done(self) -> bool:
        """The ``[DONE]`` sentinel that ends OpenAI streams."""
        return self.data.strip() == DONE_DATA


class SseDecoder:
    """Lines in (without their newline), events out."""

    def __init__(self) -> None:
        self._event = "message"
        self._data: list[str] = []

    def feed_line(self, line: str) -> SseEvent | None:
        """Take one line; return the event it completes, if any."""
        line = line.rstrip("\r")
        if not line:
            return self._take()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value or "message"
        return None

    def flush(self) -> SseEvent | None:
        """The last event, when the stream ended without a closing blank line."""
        return self._take()

    def _take(self) -> SseEvent | None:
        event, self._event = self._event, "message"
        if not self._data:
            return None
        data, self._data = "\n".join(self._data), []
        return SseEvent(data, event)


def iter_sse(lines: Iterable[str]) -> Iterator[SseEvent]:
    """The events of a stream of lines."""
    decoder = SseDecoder()
    for line in lines:
        event = decoder.feed_line(line)
        if event is not None:
            yield event
    tail = decoder.flush()
    if tail is not None:
        yield tail


async def aiter_sse(lines: AsyncIterable[str]) -> AsyncIterator[SseEvent]:
    """The events of an async stream of lines (``httpx.Response.aiter_lines()``)."""
    decoder = SseDecoder()
    async for line in lines:
        event = decoder.feed_line(line)
        if event is not None:
            yield event
    tail = decoder.flush()
    if tail is not None:
        yield tail
