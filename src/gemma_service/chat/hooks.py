"""Hooks on a run: what takes part in every request without wrapping its stream.

A ``RunHook`` is asked, once per run, for a ``RunObserver`` (or None to sit this run out). The
run calls its observers in order: ``before_generate`` once before the engine starts (it may
wait: the GPU placement does), ``on_engine_event`` for every engine event, ``on_choice_end``
before a choice's end is passed on (remembering the turn happens there, so a client that reads
the end can rely on it), and ``on_close`` exactly once, however the run ends.
"""

from __future__ import annotations

from typing import Protocol

from gemma_service.chat.context import ChatContextBuilder
from gemma_service.chat.events import ChoiceEnd, RunInfo
from gemma_service.chat.thought_channel import without_thoughts
from gemma_service.engine.protocol import TokenEvent
from gemma_service.gpu.residency import GpuResidency


class RunObserver:
    """Takes part in one run. This base does nothing; observers override what they need."""

    async def before_generate(self) -> None:
        """Once, after ``start`` returned and before the engine starts the request."""

    def on_engine_event(self, choice: int, event: TokenEvent) -> None:
        """Every engine event of every choice, as it arrives."""

    async def on_choice_end(self, end: ChoiceEnd, raw_text: str) -> None:
        """A choice ended (``raw_text``: everything the model wrote, markup included)."""

    def on_close(self) -> None:
        """Exactly once, when the run is done, failed or abandoned."""


class RunHook(Protocol):
    """Makes the observer of each run."""

    def observe(self, run: RunInfo) -> RunObserver | None: ...


class GpuPlacement:
    """Holds the model's placement (the GPU lease) while a run generates."""

    def __init__(self, residency: GpuResidency) -> None:
        self._residency = residency

    def observe(self, run: RunInfo) -> RunObserver:
        return _Placed(self._residency, run)


class _Placed(RunObserver):
    def __init__(self, residency: GpuResidency, run: RunInfo) -> None:
        self._residency = residency
        self._run = run
        self._holding = False

    async def before_generate(self) -> None:
        self._run.gpu_wait_s = await self._residency.request_started()
        self._holding = True

    def on_close(self) -> None:
        if self._holding:
            self._holding = False
            self._residency.request_finished()


class ConversationMemory:
    """Stores a finished turn in its conversation (runs that name one)."""

    def __init__(self, context: ChatContextBuilder) -> None:
        self._context = context

    def observe(self, run: RunInfo) -> RunObserver | None:
        if run.context is None or not run.context.conversation_id:
            return None
        return _Remembering(self._context, run)


class _Remembering(RunObserver):
    def __init__(self, context: ChatContextBuilder, run: RunInfo) -> None:
        self._context = context
        self._run = run

    async def on_choice_end(self, end: ChoiceEnd, raw_text: str) -> None:
        # The first choice is the conversation's answer; a failed or cut-off one is not kept.
        chat = self._run.context
        if end.choice == 0 and chat is not None and end.finish_reason in _KEPT:
            # A thought is not part of the conversation (the model would read it as text).
            reply = without_thoughts(raw_text) if self._run.thought_channel else raw_text
            await self._context.remember(chat, reply)


_KEPT = ("stop", "length", "tool_calls")
