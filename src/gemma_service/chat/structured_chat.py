"""A chat request's ``tools``, ``tool_choice`` and ``response_format`` → what the prompt says,
how sampling is constrained, and how the reply is read back (content and tool calls).

Precedence: a forced tool call (``required`` or a named function) wins over
``response_format``, whose grammar would otherwise forbid the call; with ``auto`` and a
``response_format``, the reply follows the format and makes no tool calls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gemma_service.chat.prompt import Message
from gemma_service.chat.structured import (
    ContentDelta,
    FunctionTool,
    StreamDelta,
    ToolCall,
    ToolCallStreamParser,
    ToolChoice,
    parse_tool_calls,
    parse_tool_choice,
    parse_tools,
    render_tool_instructions,
    response_format_grammar,
    tool_call_grammar,
)
from gemma_service.chat.structured.tool_specs import TOOL_CALL_CLOSE, TOOL_RESPONSE_OPEN
from gemma_service.engine.protocol import SamplingParams


@dataclass(frozen=True, slots=True)
class ChatReply:
    """One choice read back: content (None when the reply is only calls), calls, finish."""

    content: str | None
    tool_calls: list[ToolCall]
    finish_reason: str


@dataclass(slots=True)
class StructuredChat:
    """A chat request with its tools and response format applied."""

    messages: list[Message]
    grammar: str | None = None
    tools: list[FunctionTool] = field(default_factory=list)
    choice: ToolChoice = field(default_factory=lambda: ToolChoice("none"))
    parallel: bool = True

    @property
    def reads_tool_calls(self) -> bool:
        """Whether replies are parsed for tool calls (tool_choice is not none)."""
        return self.choice.mode != "none"

    @property
    def forces_tool_call(self) -> bool:
        return self.choice.mode in ("required", "function")

    def constrain(self, sampling: SamplingParams) -> SamplingParams:
        """Set the grammar and the stops that end a reply after its calls."""
        sampling.grammar = self.grammar
        extra: list[str] = []
        if self.choice.mode == "auto":
            # A small model likes to go on and invent the function's result.
            extra.append(TOOL_RESPONSE_OPEN)
            if not self.parallel:  # the reply ends at its first call; the parser closes it
                extra.append(TOOL_CALL_CLOSE)
        sampling.stop = [*sampling.stop, *(s for s in extra if s not in sampling.stop)]
        return sampling

    def stream_parser(self) -> ToolCallStreamParser:
        """A parser for one streamed choice."""
        return ToolCallStreamParser(self._function_names, parallel=self.parallel)

    def finish_stream(self, parser: ToolCallStreamParser) -> list[StreamDelta]:
        """Flush a streamed choice's parser, dropping what ``reply`` drops."""
        deltas = parser.finish()
        if self.forces_tool_call and parser.calls:
            return [d for d in deltas if not isinstance(d, ContentDelta)]
        return deltas

    def reply(self, text: str, finish_reason: str) -> ChatReply:
        """Split a finished choice's text into content and calls."""
        if not self.reads_tool_calls:
            return ChatReply(text, [], finish_reason)
        content, calls = parse_tool_calls(text, self._function_names, parallel=self.parallel)
        if self.forces_tool_call and calls:
            # The grammar allows only calls: other text is a call cut off by max_tokens.
            content = ""
        return finished_reply(content, calls, finish_reason)

    @property
    def _function_names(self) -> list[str]:
        return [tool.name for tool in self.tools]


def finished_reply(content: str, calls: list[ToolCall], finish_reason: str) -> ChatReply:
    """With calls, the finish reason is ``tool_calls`` and empty content is None (as OpenAI)."""
    if not calls:
        return ChatReply(content, [], finish_reason)
    return ChatReply(content or None, calls, "tool_calls")


def structure_chat(
    messages: list[Message],
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    tool_choice: str | Mapping[str, Any] | None = None,
    parallel: bool = True,
    response_format: Mapping[str, Any] | None = None,
) -> StructuredChat:
    """Check the request's tool and format fields (InvalidRequestError naming the field) and
    build the prompt turns and grammar."""
    functions = parse_tools(tools)
    choice = parse_tool_choice(tool_choice, functions)
    format_grammar = response_format_grammar(response_format)
    if choice.mode == "auto" and format_grammar is not None:
        choice = ToolChoice("none")  # the format's grammar leaves no room for a call
    grammar = tool_call_grammar(functions, choice, parallel) or format_grammar
    instructions = render_tool_instructions(functions, choice, parallel)
    return StructuredChat(
        _with_system_text(messages, instructions), grammar, functions, choice, parallel
    )


def _with_system_text(messages: list[Message], text: str) -> list[Message]:
    """Add ``text`` to the system message (one system turn keeps chat templates happy)."""
    if not text:
        return messages
    if messages and messages[0].role == "system":
        first = messages[0]
        joined = f"{first.content}\n\n{text}" if first.content else text
        return [Message("system", joined), *messages[1:]]
    return [Message("system", text), *messages]
