"""Helpers for answering with engine streams: SSE framing, priming, disconnect handling."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import StreamingResponse

from gemma_service.engine.protocol import TokenEvent

T = TypeVar("T")

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse(data: Any) -> bytes:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


SSE_DONE = b"data: [DONE]\n\n"


def sse_response(body: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(body, media_type="text/event-stream", headers=SSE_HEADERS)


async def prime(stream: AsyncIterator[TokenEvent]) -> AsyncIterator[TokenEvent]:
    """Wait for a stream's first event, so admission errors (429, 503) raise before any byte."""
    first = await anext(stream)

    async def chained() -> AsyncIterator[TokenEvent]:
        try:
            yield first
            async for event in stream:
                yield event
        finally:
            await _close(stream)

    return chained()


async def prime_all(streams: list[AsyncIterator[TokenEvent]]) -> list[AsyncIterator[TokenEvent]]:
    try:
        return list(await asyncio.gather(*(prime(s) for s in streams)))
    except BaseException:
        for s in streams:
            await _close(s)
        raise


async def _close(stream: AsyncIterator[TokenEvent]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Run ``work``; cancel it (freeing its sequences) if the client goes away meanwhile."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=0.25)
            if done:
                return task.result()
            if await request.is_disconnected():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                raise asyncio.CancelledError("client disconnected")
    finally:
        if not task.done():
            task.cancel()
