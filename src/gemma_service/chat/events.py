"""What a ``ChatRun`` tells its protocol writer: what is known at once, then typed events.

Events carry the choice they belong to. Each choice sends any number of ``TextDelta``,
``ReasoningDelta`` and ``ToolCallDelta`` and ends with exactly one ``ChoiceEnd`` (with the
finish reason and usage, or the typed error that ended it). ``RunResult`` is the same events
collected, so a streamed answer and a whole one cannot differ.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

from gemma_service.chat.context import AssembledChat
from gemma_service.chat.job import Caller
from gemma_service.chat.structured import ToolCall
from gemma_service.engine.protocol import TokenLogprob, Usage
from gemma_service.errors import ServiceError

ChatFinish = Literal["stop", "length", "tool_calls", "error", "timeout", "abort"]


@dataclass(frozen=True, slots=True)
class TextDelta:
    """Answer text (``logprobs``, when asked for, of the tokens it came from; ``text`` may be
    empty while the tokens' text is held back)."""

    choice: int
    text: str
    logprobs: list[TokenLogprob] | None = None


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """Thinking text, kept apart from the answer (models with a thinking channel)."""

    choice: int
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """Part of tool call ``index``: the first has its id and name, the rest argument text."""

    choice: int
    index: int
    arguments: str
    id: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class ChoiceEnd:
    """A choice is done: why, what it cost, and (finish "error" or "timeout") what failed.
    ``stop_string``: the stop sequence that ended it, when one did (Anthropic reports it)."""

    choice: int
    finish_reason: ChatFinish
    usage: Usage
    error: ServiceError | None = None
    stop_string: str | None = None


RunEvent = TextDelta | ReasoningDelta | ToolCallDelta | ChoiceEnd


@dataclass(slots=True)
class RunInfo:
    """What is known of a run when ``start`` returns; ``gpu_wait_s`` is filled in once the
    model is placed, before the first event."""

    request_id: str
    model: str
    n: int
    prompt_tokens: int
    prompt_text: str
    caller: Caller | None = None
    context: AssembledChat | None = None  # history, sources, warnings (chat requests)
    reads_tool_calls: bool = False
    forces_tool_call: bool = False
    thought_channel: bool = False  # replies may hold a thought (Gemma 4)
    created: int = field(default_factory=lambda: int(time.time()))
    started_at: float = field(default_factory=time.perf_counter)
    gpu_wait_s: float = 0.0

    def inference_s(self) -> float:
        """Seconds since the run started, less the wait for the GPU."""
        return time.perf_counter() - self.started_at - self.gpu_wait_s


@dataclass(slots=True)
class ChoiceResult:
    """One choice, whole. ``content`` is None when the reply is only tool calls."""

    index: int
    content: str | None
    finish_reason: ChatFinish
    usage: Usage
    tool_calls: list[ToolCall] = field(default_factory=list)
    reasoning: str | None = None
    logprobs: list[TokenLogprob] = field(default_factory=list)
    stop_string: str | None = None


@dataclass(slots=True)
class RunResult:
    choices: list[ChoiceResult]

    @property
    def usages(self) -> list[Usage]:
        return [c.usage for c in self.choices]


class ResultCollector:
    """Assembles a run's events into its result, as a client assembles a stream."""

    def __init__(self, n: int, *, forces_tool_call: bool) -> None:
        self._forced = forces_tool_call
        self._text: list[list[str]] = [[] for _ in range(n)]
        self._reasoning: list[list[str]] = [[] for _ in range(n)]
        self._logprobs: list[list[TokenLogprob]] = [[] for _ in range(n)]
        self._calls: list[dict[int, list[str]]] = [{} for _ in range(n)]  # index: id, name, args
        self._ends: dict[int, ChoiceEnd] = {}

    def add(self, event: RunEvent) -> None:
        """Take one event; a choice that ended in error raises its error."""
        i = event.choice
        if isinstance(event, TextDelta):
            self._text[i].append(event.text)
            self._logprobs[i].extend(event.logprobs or [])
        elif isinstance(event, ReasoningDelta):
            self._reasoning[i].append(event.text)
        elif isinstance(event, ToolCallDelta):
            call = self._calls[i].setdefault(event.index, ["", "", ""])
            call[0] = event.id or call[0]
            call[1] = event.name or call[1]
            call[2] += event.arguments
        else:
            if event.error is not None:
                raise event.error
            self._ends[i] = event

    def result(self) -> RunResult:
        choices = []
        for i, text in enumerate(self._text):
            end = self._ends.get(i)
            if end is None:
                raise RuntimeError(f"choice {i} ended without a finish event")
            calls = [ToolCall(c[0], c[1], c[2]) for _, c in sorted(self._calls[i].items())]
            content: str | None = "".join(text)
            if calls and (self._forced or not content):
                content = None  # as OpenAI: a reply of calls has no content
            reasoning = "".join(self._reasoning[i]) or None
            choices.append(
                ChoiceResult(
                    i,
                    content,
                    end.finish_reason,
                    end.usage,
                    calls,
                    reasoning,
                    self._logprobs[i],
                    end.stop_string,
                )
            )
        return RunResult(choices)
