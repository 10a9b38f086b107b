"""How a model family writes a tool call, for the parser that reads calls and the grammar that
forces them.

``JSON_CALLS`` is our prompted form for models without tool tokens (Gemma 3 and 3n):
``<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>``, one per
line. ``GEMMA4_CALLS`` is Gemma 4's own, as its chat template and llama.cpp write it:
``<|tool_call>call:get_weather{city:<|"|>Paris<|"|>}<tool_call|>``, calls back to back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Literal

from gemma_service.chat.structured.gbnf import gbnf_literal
from gemma_service.chat.structured.gemma4_arguments import Gemma4ArgumentsReader
from gemma_service.chat.structured.json_arguments import ArgumentsReader, JsonArgumentsReader
from gemma_service.chat.structured.tool_specs import TOOL_CALL_CLOSE, TOOL_CALL_OPEN
from gemma_service.chat.structured.value_syntax import GEMMA4_SYNTAX, JSON_SYNTAX, ValueSyntax

GEMMA4_CALL_OPEN = "<|tool_call>"
GEMMA4_CALL_CLOSE = "<tool_call|>"

HeadStatus = Literal["more", "no", "yes"]
_NAME_CHARS = re.compile(r"[A-Za-z0-9_.\-]*")
_FENCED = re.compile(r"```[A-Za-z]*\s*(.*?)\s*```", re.DOTALL)


@dataclass(frozen=True, slots=True)
class HeadMatch:
    """How far the text after a call's open marker matches the form we stream from.

    "yes": the arguments begin at ``end`` (their opening brace); "no": the block is read whole
    once it closes; "more": too little text yet. ``name`` is the function, once it is known.
    """

    status: HeadStatus
    name: str | None = None
    end: int = 0


@dataclass(frozen=True, slots=True)
class ToolCallSyntax:
    """One family's way of writing calls."""

    name: Literal["json", "gemma4"]
    open: str
    close: str
    values: ValueSyntax
    read_head: Callable[[str, frozenset[str] | None], HeadMatch]
    new_arguments_reader: Callable[[], ArgumentsReader]
    # (name, compact JSON arguments) of a whole call block, or None if it is not a usable call.
    parse_block: Callable[[str, frozenset[str] | None], tuple[str, str] | None]
    # GBNF of one call between the markers, given the function name and its arguments rule.
    call_body: Callable[[str, str], str]
    separator: str  # GBNF between the calls of one reply
    grammar_open: str  # GBNF of the open and close markers
    grammar_close: str


# --- JSON calls ----------------------------------------------------------------------------
_JSON_HEAD: tuple[str | tuple[str, ...], ...] = (
    "{",
    '"name"',
    ":",
    "",  # the function name, a JSON string
    ",",
    ('"arguments"', '"parameters"'),
    ":",
)


def _read_json_head(text: str, names: frozenset[str] | None) -> HeadMatch:
    """``{"name": "NAME", "arguments": {`` with any whitespace between tokens."""
    i, name = 0, None
    for step in _JSON_HEAD:
        i = _skip_space(text, i)
        if i == len(text):
            return HeadMatch("more", name)
        if step == "":
            match = _NAME_CHARS.match(text, i + 1) if text[i] == '"' else None
            if match is None:
                return HeadMatch("no")
            if match.end() == len(text):
                return HeadMatch("more")
            if text[match.end()] != '"' or not _known(match.group(), names):
                return HeadMatch("no")
            name, i = match.group(), match.end() + 1
            continue
        options = step if isinstance(step, tuple) else (step,)
        rest = text[i:]
        full = next((o for o in options if rest.startswith(o)), None)
        if full is None:
            partial = any(o.startswith(rest) for o in options)
            return HeadMatch("more", name) if partial else HeadMatch("no", name)
        i += len(full)
    i = _skip_space(text, i)
    if i == len(text):
        return HeadMatch("more", name)
    return HeadMatch("yes", name, i) if text[i] == "{" else HeadMatch("no", name)


def _parse_json_block(block: str, names: frozenset[str] | None) -> tuple[str, str] | None:
    """A whole JSON call, as small models also write it (fenced, "parameters", a JSON string
    of arguments, keys in any order)."""
    text = block.strip()
    fenced = _FENCED.fullmatch(text)
    if fenced:
        text = fenced.group(1)
    payload = _json_or_none(text)
    if not isinstance(payload, dict):
        return None
    name = payload.get("name")
    if not isinstance(name, str) or not name or not _known(name, names):
        return None
    arguments = payload.get("arguments", payload.get("parameters", {}))
    if isinstance(arguments, str):  # arguments sent as a JSON string, OpenAI style
        arguments = _json_or_none(arguments)
    if not isinstance(arguments, dict):
        return None
    return name, json.dumps(arguments, ensure_ascii=False, separators=(",", ":"))


def _json_call_body(name: str, arguments: str) -> str:
    key, value = gbnf_literal('"name"'), gbnf_literal(json.dumps(name))
    args_key = gbnf_literal('"arguments"')
    return f'"{{" ws {key} ws ":" ws {value} ws "," ws {args_key} ws ":" ws {arguments} ws "}}"'


JSON_CALLS = ToolCallSyntax(
    name="json",
    open=TOOL_CALL_OPEN,
    close=TOOL_CALL_CLOSE,
    values=JSON_SYNTAX,
    read_head=_read_json_head,
    new_arguments_reader=lambda: JsonArgumentsReader(TOOL_CALL_CLOSE),
    parse_block=_parse_json_block,
    call_body=_json_call_body,
    separator='"\\n"',
    grammar_open=gbnf_literal(TOOL_CALL_OPEN),
    grammar_close=gbnf_literal(TOOL_CALL_CLOSE),
)


# --- Gemma 4 calls -------------------------------------------------------------------------
_G4_PREFIX = "call:"


def _read_gemma4_head(text: str, names: frozenset[str] | None) -> HeadMatch:
    """``call:NAME{``."""
    if not text.startswith(_G4_PREFIX):
        return HeadMatch("more") if _G4_PREFIX.startswith(text) else HeadMatch("no")
    match = _NAME_CHARS.match(text, len(_G4_PREFIX))
    assert match is not None  # the pattern matches the empty string
    name = match.group()
    if match.end() == len(text):
        return HeadMatch("more", name if _known(name, names) and name else None)
    if text[match.end()] != "{" or not name or not _known(name, names):
        return HeadMatch("no")
    return HeadMatch("yes", name, match.end())


def _parse_gemma4_block(block: str, names: frozenset[str] | None) -> tuple[str, str] | None:
    head = _read_gemma4_head(block, names)
    if head.status != "yes" or head.name is None:
        return None
    reader = Gemma4ArgumentsReader(GEMMA4_CALL_CLOSE)
    arguments = reader.feed(block[head.end :])
    if reader.status != "complete" or reader.rest.strip():
        return None
    return head.name, arguments


GEMMA4_CALLS = ToolCallSyntax(
    name="gemma4",
    open=GEMMA4_CALL_OPEN,
    close=GEMMA4_CALL_CLOSE,
    values=GEMMA4_SYNTAX,
    read_head=_read_gemma4_head,
    new_arguments_reader=lambda: Gemma4ArgumentsReader(GEMMA4_CALL_CLOSE),
    parse_block=_parse_gemma4_block,
    call_body=lambda name, arguments: f"{gbnf_literal(_G4_PREFIX + name)} {arguments}",
    separator="",
    grammar_open=gbnf_literal(GEMMA4_CALL_OPEN),
    grammar_close=gbnf_literal(GEMMA4_CALL_CLOSE),
)


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def _known(name: str, names: Collection[str] | None) -> bool:
    return names is None or name in names


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        return None


def _reject_constant(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")
