"""Tool calling: the instructions the prompt carries for models without tool tokens (Gemma 3),
and the grammar that forces a well-formed call, in the model's own call syntax, when
``tool_choice`` is required or names a function.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from gemma_service.chat.structured.call_syntax import JSON_CALLS, ToolCallSyntax
from gemma_service.chat.structured.gbnf import GbnfGrammar
from gemma_service.chat.structured.schema_rules import SchemaGrammarBuilder
from gemma_service.chat.structured.tool_specs import (
    TOOL_CALL_CLOSE,
    TOOL_CALL_OPEN,
    TOOL_RESPONSE_OPEN,
    FunctionTool,
    ToolChoice,
)

# Calls one reply may hold under a grammar: a bound, so a small model cannot repeat calls
# until max_tokens.
MAX_PARALLEL_CALLS = 8


def render_tool_instructions(
    tools: Sequence[FunctionTool], choice: ToolChoice, parallel: bool
) -> str:
    """Text for the system turn: the functions, the call format and what the model must do.

    Empty when ``choice`` is none: the model then answers in plain text.
    """
    if choice.mode == "none" or not tools:
        return ""
    lines = ["You can call these functions:"]
    for tool in tools:
        described = {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
        }
        lines.append(json.dumps(described, ensure_ascii=False))
    lines += [
        "",
        "To call a function, write exactly this, with the arguments as a JSON object:",
        f'{TOOL_CALL_OPEN}{{"name": "<function name>", "arguments": {{...}}}}{TOOL_CALL_CLOSE}',
        (
            "You may call several functions: one such line per call."
            if parallel
            else "Call at most one function."
        ),
        _CHOICE_RULES[choice.mode].format(name=choice.function_name),
        f"Results come back as {TOOL_RESPONSE_OPEN} name=...>; use them to answer the user.",
    ]
    return "\n".join(lines)


_CHOICE_RULES = {
    "auto": "Call a function only when you need its result; otherwise answer directly.",
    "required": "You must call a function now: reply with the call only.",
    "function": "You must call the function {name} now: reply with the call only.",
}


def tool_call_grammar(
    tools: Sequence[FunctionTool],
    choice: ToolChoice,
    parallel: bool,
    *,
    max_string_length: int | None = None,
    syntax: ToolCallSyntax = JSON_CALLS,
) -> str | None:
    """GBNF forcing one call (or up to MAX_PARALLEL_CALLS), written in ``syntax``, whose
    arguments match the function's parameters schema; None unless ``choice`` is required or a
    named function. ``max_string_length`` bounds strings the schema leaves unbounded."""
    if choice.mode == "required":
        targets = list(tools)
    elif choice.mode == "function":
        targets = [tool for tool in tools if tool.name == choice.function_name]
    else:
        return None
    grammar = GbnfGrammar()
    calls = [_add_call_rule(grammar, tool, max_string_length, syntax) for tool in targets]
    call = grammar.add(
        "tool-call",
        " ".join(
            [
                syntax.grammar_open,
                calls[0] if len(calls) == 1 else f"({' | '.join(calls)})",
                syntax.grammar_close,
            ]
        ),
    )
    if not parallel:
        return grammar.render(call, [call])
    more = f"({syntax.separator} {call})".replace("( ", "(")
    return grammar.render(f"{call} {more}{{0,{MAX_PARALLEL_CALLS - 1}}}", [call])


def _add_call_rule(
    grammar: GbnfGrammar,
    tool: FunctionTool,
    max_string_length: int | None,
    syntax: ToolCallSyntax,
) -> str:
    """One call of ``tool`` between the markers, its arguments an instance of its parameters."""
    where = f"tools[{tool.index}].function.parameters"
    builder = SchemaGrammarBuilder(
        grammar,
        tool.parameters,
        where=where,
        param=where,
        max_string_length=max_string_length,
        syntax=syntax.values,
    )
    arguments = builder.build(f"{tool.name}-arguments")
    return grammar.add(f"{tool.name}-call", syntax.call_body(tool.name, arguments))
