"""How a JSON value is written out in a grammar: as JSON, or in Gemma 4's call-argument syntax.

The schema grammar builder asks a ``ValueSyntax`` for every piece of text it emits, so one
builder serves both: ``response_format`` and Gemma 3's JSON calls use ``JSON_SYNTAX``, Gemma 4's
native calls ``GEMMA4_SYNTAX`` (``{city:<|"|>Paris<|"|>,days:3}``: bare keys, strings between
``<|"|>`` marks, no whitespace, keys in the sorted order its chat template writes them).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gemma_service.chat.structured.gbnf import GEMMA4_STRING_MARK, gbnf_literal


@dataclass(frozen=True, slots=True)
class ValueSyntax:
    """The GBNF pieces of one way of writing values."""

    name: str
    any_value: str  # shared rule: any value
    any_object: str
    any_string: str
    char: str  # shared rule: one character inside a string
    quote: str  # GBNF literal that opens and closes a string
    ws: str  # GBNF allowed between tokens ("" for none; spaces in GBNF mean nothing)
    generic_key: str  # GBNF for an object key not named by the schema
    sort_keys: bool  # properties in sorted order, not declaration order
    key_text: Callable[[str], str]  # a property name as written
    value_text: Callable[[Any], str]  # a constant value as written
    key_forbids: str = ""  # characters a property name cannot hold in this syntax

    def string(self, chars: str) -> str:
        """A string whose characters match the GBNF ``chars``."""
        return f"{self.quote} {chars} {self.quote}"

    def ordered(self, names: list[str]) -> list[str]:
        """Property names in the order this syntax writes them."""
        return sorted(names, key=str.lower) if self.sort_keys else names


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def gemma4_value_text(value: Any) -> str:
    """A value as Gemma 4's chat template writes call arguments (keys bare and sorted)."""
    if isinstance(value, str):
        return f"{GEMMA4_STRING_MARK}{value}{GEMMA4_STRING_MARK}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        items = sorted(value.items(), key=lambda item: str(item[0]).lower())
        return "{" + ",".join(f"{k}:{gemma4_value_text(v)}" for k, v in items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(gemma4_value_text(v) for v in value) + "]"
    return _json_text(value)  # numbers: NaN and infinity raise ValueError


JSON_SYNTAX = ValueSyntax(
    name="JSON",
    any_value="json-value",
    any_object="json-object",
    any_string="json-string",
    char="json-char",
    quote=gbnf_literal('"'),
    ws="ws",
    generic_key="json-string",
    sort_keys=False,
    key_text=lambda name: json.dumps(name, ensure_ascii=False),
    value_text=_json_text,
)

GEMMA4_SYNTAX = ValueSyntax(
    name="Gemma 4",
    any_value="g4-value",
    any_object="g4-object",
    any_string="g4-string",
    char="g4-char",
    quote=gbnf_literal(GEMMA4_STRING_MARK),
    ws="",
    generic_key="g4-key",
    sort_keys=True,
    key_text=lambda name: name,
    value_text=gemma4_value_text,
    key_forbids=':{}[],<"',
)
