"""A chat request's tools, tool choice and output format → what the prompt says, how sampling
is constrained, and how a reply is read back (content and tool calls, as it streams).

Precedence: a forced tool call (``required`` or a named function) wins over
``response_format``, whose grammar would otherwise forbid the call; with ``auto`` and a
``response_format``, the reply follows the format and makes no tool calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from gemma_service.chat.job import OutputFormat
from gemma_service.chat.prompt import Message
from gemma_service.chat.structured import (
    JSON_OBJECT_GBNF,
    ContentDelta,
    FunctionTool,
    StreamDelta,
    ToolCallStreamParser,
    ToolChoice,
    render_tool_instructions,
    schema_to_gbnf,
    tool_call_grammar,
)
from gemma_service.chat.structured.tool_specs import TOOL_CALL_CLOSE, TOOL_RESPONSE_OPEN
from gemma_service.engine.protocol import SamplingParams


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
        """``sampling`` with the grammar and the stops that end a reply after its calls."""
        extra: list[str] = []
        if self.choice.mode == "auto":
            # A small model likes to go on and invent the function's result.
            extra.append(TOOL_RESPONSE_OPEN)
            if not self.parallel:  # the reply ends at its first call; the parser closes it
                extra.append(TOOL_CALL_CLOSE)
        stop = [*sampling.stop, *(s for s in extra if s not in sampling.stop)]
        return replace(sampling, grammar=self.grammar, stop=stop)

    def stream_parser(self) -> ToolCallStreamParser:
        """A parser for one streamed choice."""
        return ToolCallStreamParser(self._function_names, parallel=self.parallel)

    def finish_stream(self, parser: ToolCallStreamParser) -> list[StreamDelta]:
        """Flush a choice's parser at its end. With a forced call, text left over beside the
        calls is a call cut off by max_tokens: it is dropped, not shown as content."""
        deltas = parser.finish()
        if self.forces_tool_call and parser.calls:
            return [d for d in deltas if not isinstance(d, ContentDelta)]
        return deltas

    @property
    def _function_names(self) -> list[str]:
        return [tool.name for tool in self.tools]


def structure_chat(
    messages: list[Message],
    *,
    tools: Sequence[FunctionTool] = (),
    tool_choice: ToolChoice | None = None,
    parallel: bool = True,
    output: OutputFormat | None = None,
) -> StructuredChat:
    """Apply a request's tools and output format to its prompt turns: the instructions the
    system turn carries and the grammar that constrains sampling. ``tool_choice`` None means
    auto with tools, none without. A schema we cannot enforce is a 400 naming its field."""
    choice = tool_choice or ToolChoice("auto" if tools else "none")
    format_grammar = output_grammar(output)
    if choice.mode == "auto" and format_grammar is not None:
        choice = ToolChoice("none")  # the format's grammar leaves no room for a call
    grammar = tool_call_grammar(tools, choice, parallel) or format_grammar
    instructions = render_tool_instructions(tools, choice, parallel)
    return StructuredChat(
        _with_system_text(messages, instructions), grammar, list(tools), choice, parallel
    )


def output_grammar(output: OutputFormat | None) -> str | None:
    """The grammar that makes replies take ``output``'s shape (None: plain text)."""
    if output is None or output.type == "text":
        return None
    if output.type == "json_object":
        return JSON_OBJECT_GBNF
    return schema_to_gbnf(output.schema, where=output.where, param=output.param)


def _with_system_text(messages: list[Message], text: str) -> list[Message]:
    """Add ``text`` to the system message (one system turn keeps chat templates happy)."""
    if not text:
        return messages
    if messages and messages[0].role == "system":
        first = messages[0]
        joined = f"{first.content}\n\n{text}" if first.content else text
        return [Message("system", joined), *messages[1:]]
    return [Message("system", text), *messages]
