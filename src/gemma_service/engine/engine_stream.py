"""The handle ``Engine.submit`` returns: one admitted request's events, read once."""

from __future__ import annotations

from typing import Protocol

from gemma_service.engine.protocol import TokenEvent
from gemma_service.engine.request_state import RequestState


class StreamOwner(Protocol):
    """The engine side of a stream: start the held request, abort it."""

    def begin(self, request_id: str) -> None: ...

    def abort(self, request_id: str) -> None: ...


class EngineStream:
    """Implements ``GenerationStream`` over a request's delivery queue.

    The engine holds the admitted request until the first read, which starts it. Closing the
    stream before its last event aborts the request, whether or not it was ever read.
    """

    def __init__(self, owner: StreamOwner, state: RequestState) -> None:
        self._owner = owner
        self._state = state
        self._begun = False
        self._done = False  # the last event was read
        self._closed = False

    @property
    def request_id(self) -> str:
        return self._state.request_id

    def __aiter__(self) -> EngineStream:
        return self

    async def __anext__(self) -> TokenEvent:
        if self._done or self._closed:
            raise StopAsyncIteration
        if not self._begun:
            self._begun = True
            self._owner.begin(self.request_id)
        event = await self._state.queue.get()
        if event.finish_reason is not None:
            self._done = True
        return event

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self._done:
            self._owner.abort(self.request_id)
