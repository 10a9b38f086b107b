"""A chat request's tools, tool choice and output format → what the prompt says, how sampling
is constrained, and how a reply is read back (content and tool calls, as it streams).

Tools reach the model in its family's way: a template that declares tools itself (Gemma 4's)
gets them as ``tools``; otherwise instructions join the system turn. Calls are read, and forced,
in the family's call syntax. A forced call's strings that the schema leaves unbounded are
bounded (``FORCED_CALL_MAX_STRING``), so a model looping inside an argument cannot write until
``max_tokens``.

Precedence: a forced tool call (``required`` or a named function) wins over
``response_format``, whose grammar would otherwise forbid the call; with ``auto`` and a
``response_format``, the reply follows the format and makes no tool calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from gemma_service.chat.job import OutputFormat
from gemma_service.chat.prompt import Message
from gemma_service.chat.structured import (
    JSON_CALLS,
    JSON_OBJECT_GBNF,
    ContentDelta,
    FunctionTool,
    StreamDelta,
    ToolCallStreamParser,
    ToolCallSyntax,
    ToolChoice,
    render_tool_instructions,
    schema_to_gbnf,
    tool_call_grammar,
)
from gemma_service.chat.structured.tool_specs import TOOL_RESPONSE_OPEN
from gemma_service.engine.protocol import SamplingParams

# Characters a forced call's string argument may hold when its schema sets no maxLength.
FORCED_CALL_MAX_STRING = 256


@dataclass(slots=True)
class StructuredChat:
    """A chat request with its tools and response format applied."""

    messages: list[Message]
    grammar: str | None = None
    tools: list[FunctionTool] = field(default_factory=list)
    choice: ToolChoice = field(default_factory=lambda: ToolChoice("none"))
    parallel: bool = True
    syntax: ToolCallSyntax = JSON_CALLS
    # The request's tools for a template that declares them itself (empty otherwise).
    template_tools: list[dict[str, Any]] = field(default_factory=list)
    thought_channel: bool = False  # replies may open a thinking channel

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
            if self.syntax is JSON_CALLS:
                # A small model likes to go on and invent the function's result (Gemma 4's
                # <|tool_response> ends generation by itself).
                extra.append(TOOL_RESPONSE_OPEN)
            if not self.parallel:  # the reply ends at its first call; the parser closes it
                extra.append(self.syntax.close)
        stop = [*sampling.stop, *(s for s in extra if s not in sampling.stop)]
        return replace(sampling, grammar=self.grammar, stop=stop)

    def stream_parser(self) -> ToolCallStreamParser:
        """A parser for one streamed choice."""
        return ToolCallStreamParser(
            self._function_names, parallel=self.parallel, syntax=self.syntax
        )

    def finish_stream(self, parser: ToolCallStreamParser) -> list[StreamDelta]:
        """Flush a choice's parser at its end. With a forced call, no text beside the calls
        is shown as content (the grammar allows none; what is left is not an answer)."""
        deltas = parser.finish()
        if self.forces_tool_call:  # what is left is a marker cut by max_tokens, not an answer
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
    syntax: ToolCallSyntax = JSON_CALLS,
    native_tools: bool = False,
    thought_channel: bool = False,
) -> StructuredChat:
    """Apply a request's tools and output format to its prompt turns: the tools the template
    declares (``native_tools``) or the instructions the system turn carries, and the grammar
    that constrains sampling, in ``syntax``. ``tool_choice`` None means auto with tools, none
    without. A schema we cannot enforce is a 400 naming its field."""
    choice = tool_choice or ToolChoice("auto" if tools else "none")
    format_grammar = output_grammar(output)
    if choice.mode == "auto" and format_grammar is not None:
        choice = ToolChoice("none")  # the format's grammar leaves no room for a call
    call_grammar = tool_call_grammar(
        tools, choice, parallel, max_string_length=FORCED_CALL_MAX_STRING, syntax=syntax
    )
    plan = StructuredChat(
        messages,
        call_grammar or format_grammar,
        list(tools),
        choice,
        parallel,
        syntax,
        thought_channel=thought_channel,
    )
    if native_tools:
        if choice.mode != "none":
            plan.template_tools = [openai_tool(tool) for tool in tools]
    else:
        plan.messages = _with_system_text(
            messages, render_tool_instructions(tools, choice, parallel)
        )
    return plan


def openai_tool(tool: FunctionTool) -> dict[str, Any]:
    """A tool as chat templates take it: OpenAI's ``tools[]`` entry, as the caller sent it."""
    function: dict[str, Any] = {"name": tool.name, "description": tool.description}
    if tool.declared_parameters is not None:
        function["parameters"] = tool.declared_parameters
    return {"type": "function", "function": function}


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
