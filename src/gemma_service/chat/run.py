"""``ChatRun``: one admitted request, from ``ChatService.start`` to its last event.

Its ``info`` is known at once (so refusals went out before any byte, and a writer can send its
headers); its events are read once, as they come, or collected into a ``RunResult``. The engine
streams of its choices are read here and nowhere else; hooks observe the run; clean-up (abort
what is unfinished, release the GPU placement, settle metering) runs exactly once, whether the
run finished, failed, or its reader went away (``aclose``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Sequence

from gemma_service.chat.events import (
    ChoiceEnd,
    ResultCollector,
    RunEvent,
    RunInfo,
    RunResult,
)
from gemma_service.chat.hooks import RunObserver
from gemma_service.chat.reply import ReplyReader
from gemma_service.engine.protocol import GenerationStream, TokenEvent

log = logging.getLogger(__name__)

_Item = tuple[int, TokenEvent | BaseException | None]


class ChatRun:
    """An admitted request: ``info`` now, typed events as they come, clean-up once."""

    def __init__(
        self,
        info: RunInfo,
        streams: Sequence[GenerationStream],
        readers: Sequence[ReplyReader],
        observers: Sequence[RunObserver],
    ) -> None:
        self.info = info
        self._streams = list(streams)
        self._readers = list(readers)
        self._observers = list(observers)
        self._events: AsyncGenerator[RunEvent, None] | None = None
        self._released = False

    def __aiter__(self) -> AsyncIterator[RunEvent]:
        if self._events is not None:
            raise RuntimeError("a run's events can be read only once")
        self._events = self._generate()
        return self._events

    async def aclose(self) -> None:
        """End the run now: unfinished choices are aborted. Safe to call more than once."""
        if self._events is not None:
            await self._events.aclose()
        await self._release()

    async def collect(self) -> RunResult:
        """Every choice, whole; raises the error of a choice that failed (the others stop)."""
        results = ResultCollector(self.info.n, forces_tool_call=self.info.forces_tool_call)
        async with contextlib.aclosing(self):
            async for event in self:
                results.add(event)
        return results.result()

    async def _generate(self) -> AsyncGenerator[RunEvent, None]:
        try:
            for observer in self._observers:
                await observer.before_generate()
            raw: list[list[str]] = [[] for _ in self._streams]
            async for choice, event in self._engine_events():
                raw[choice].append(event.text)
                for observer in self._observers:
                    observer.on_engine_event(choice, event)
                for out in self._readers[choice].feed(event):
                    if isinstance(out, ChoiceEnd):
                        text = "".join(raw[choice])
                        for observer in self._observers:
                            await observer.on_choice_end(out, text)
                    yield out
        finally:
            await self._release()

    async def _engine_events(self) -> AsyncIterator[tuple[int, TokenEvent]]:
        """Every choice's engine events, in the order they arrive."""
        if len(self._streams) == 1:
            async for event in self._streams[0]:
                yield 0, event
            return
        inbox: asyncio.Queue[_Item] = asyncio.Queue()

        async def pump(i: int, stream: GenerationStream) -> None:
            try:
                async for event in stream:
                    inbox.put_nowait((i, event))
            except Exception as exc:
                inbox.put_nowait((i, exc))
            finally:
                inbox.put_nowait((i, None))

        tasks = [asyncio.create_task(pump(i, s)) for i, s in enumerate(self._streams)]
        try:
            remaining = len(tasks)
            while remaining:
                i, item = await inbox.get()
                if item is None:
                    remaining -= 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield i, item
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _release(self) -> None:
        if self._released:
            return
        self._released = True
        for stream in self._streams:
            await stream.aclose()
        for observer in self._observers:
            try:
                observer.on_close()
            except Exception:  # one hook's failure must not leak another's resources
                log.exception("a run hook failed while closing")
