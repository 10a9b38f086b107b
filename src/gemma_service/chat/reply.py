"""Reading one choice's engine output as it streams: thought, answer text, tool calls, its end.

A ``ReplyReader`` per choice turns the engine's token events into run events. A model with a
thinking channel has its output split first (thought_channel.py): the thought becomes
``ReasoningDelta``s, never answer text. Without tools the answer passes through; with tools a
``ToolCallStreamParser`` splits it, holding back what might begin a call, so markup never
leaks into the answer. A choice whose output ended inside a call (``max_tokens``) still reports
that call, and finishes with "length"; one that made its calls finishes with "tool_calls".
"""

from __future__ import annotations

from gemma_service.chat.events import (
    ChoiceEnd,
    ReasoningDelta,
    RunEvent,
    TextDelta,
    ToolCallDelta,
)
from gemma_service.chat.structured import ContentDelta, StreamDelta
from gemma_service.chat.structured_chat import StructuredChat
from gemma_service.chat.thought_channel import Part, ThoughtChannelReader
from gemma_service.engine.protocol import FinishReason, TokenEvent, TokenLogprob, Usage


class ReplyReader:
    """Turns one choice's ``TokenEvent`` stream into ``RunEvent``s."""

    def __init__(self, choice: int, plan: StructuredChat | None = None) -> None:
        self.choice = choice
        self._plan = plan if plan is not None and plan.reads_tool_calls else None
        self._parser = self._plan.stream_parser() if self._plan is not None else None
        thoughts = plan is not None and plan.thought_channel
        self._channel = ThoughtChannelReader() if thoughts else None

    def feed(self, event: TokenEvent) -> list[RunEvent]:
        """The run events one engine event makes (none while text is held back)."""
        if event.finish_reason in ("error", "timeout"):
            # The request failed: what was held back is not an answer.
            assert event.usage is not None
            return [ChoiceEnd(self.choice, event.finish_reason, event.usage, event.error)]
        final = event.finish_reason is not None
        out: list[RunEvent] = []
        answer: list[str] = []
        for kind, text in self._split(event.text, final):
            if kind == "thought":
                out.append(ReasoningDelta(self.choice, text))
            else:
                answer.append(text)
        if self._parser is None or self._plan is None:
            text = "".join(answer)
            if text or event.logprobs:
                out.append(TextDelta(self.choice, text, event.logprobs))
        else:
            deltas = self._parser.feed("".join(answer))
            if final:
                deltas += self._plan.finish_stream(self._parser)
            out += self._from_parser(deltas, event.logprobs)
        if event.finish_reason is not None:
            out.append(self._end(event.finish_reason, event.usage, event.stop_string))
        return out

    def _split(self, text: str, final: bool) -> list[Part]:
        if self._channel is None:
            return [("answer", text)] if text else []
        parts = self._channel.feed(text)
        return parts + self._channel.finish() if final else parts

    def _from_parser(
        self, deltas: list[StreamDelta], logprobs: list[TokenLogprob] | None
    ) -> list[RunEvent]:
        out: list[RunEvent] = []
        for delta in deltas:
            if isinstance(delta, ContentDelta):
                # The tokens' logprobs travel with the first text they produced.
                out.append(TextDelta(self.choice, delta.text, logprobs if not out else None))
            else:
                out.append(
                    ToolCallDelta(self.choice, delta.index, delta.arguments, delta.id, delta.name)
                )
        if logprobs and not any(isinstance(e, TextDelta) and e.logprobs for e in out):
            out.insert(0, TextDelta(self.choice, "", logprobs))
        return out

    def _end(self, reason: FinishReason, usage: Usage | None, stop: str | None) -> ChoiceEnd:
        assert usage is not None
        parser = self._parser
        if parser is not None and parser.calls and not (reason == "length" and parser.truncated):
            return ChoiceEnd(self.choice, "tool_calls", usage)
        return ChoiceEnd(self.choice, reason, usage, stop_string=stop)
