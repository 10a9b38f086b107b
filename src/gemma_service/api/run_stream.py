"""Answering with a run: its events streamed through a protocol's writer, or collected.

Every protocol streams the same way: the headers and the writer's opening go out as soon as
``ChatService.start`` has admitted the request (before the GPU wait and the prefill), then each
event in the protocol's shape, then the writer's ending. A choice that ends in error is written
by the writer in its protocol's error shape, and the stream stops there. The run is closed
(its unfinished choices aborted) however the response ends, even if the body was never read.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol, TypeVar

from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from gemma_service.chat.events import ChoiceEnd, RunEvent
from gemma_service.chat.run import ChatRun
from gemma_service.sse import MEDIA_TYPE, SSE_HEADERS

T = TypeVar("T")


class EventWriter(Protocol):
    """Writes one run's events in a protocol's streaming shape."""

    media_type: str

    def start(self) -> list[bytes]:
        """What goes out at once, before the first event (an OpenAI role chunk)."""
        ...

    def write(self, event: RunEvent) -> list[bytes]:
        """The bytes of one event; a ``ChoiceEnd`` with an error is written as the failure."""
        ...

    def finish(self) -> list[bytes]:
        """What goes out after every choice ended well (usage, ``[DONE]``)."""
        ...


class RunResponse(StreamingResponse):
    """A streamed response that closes its run when the response ends, whatever happened."""

    def __init__(self, run: ChatRun, body: AsyncIterator[bytes], media_type: str) -> None:
        headers = SSE_HEADERS if media_type == MEDIA_TYPE else {"Cache-Control": "no-cache"}
        super().__init__(body, media_type=media_type, headers=headers)
        self.run = run

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.run.aclose()


def stream_run(
    run: ChatRun,
    writer: EventWriter,
    *,
    on_complete: Callable[[], Awaitable[None]] | None = None,
) -> RunResponse:
    """The streamed response of ``run`` in ``writer``'s protocol. ``on_complete`` runs after
    every choice ended well and before the writer's ending (a stored response is saved there,
    so a client that saw the end can continue from it)."""

    async def body() -> AsyncIterator[bytes]:
        for chunk in writer.start():
            yield chunk
        async for event in run:
            for chunk in writer.write(event):
                yield chunk
            if isinstance(event, ChoiceEnd) and event.error is not None:
                return
        if on_complete is not None:
            await on_complete()
        for chunk in writer.finish():
            yield chunk

    return RunResponse(run, body(), writer.media_type)


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
