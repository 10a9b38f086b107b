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

from gemma_service.chat.structured.gbnf import (
    GEMMA4_STRING_MARK,
    GbnfGrammar,
    gbnf_literal,
    repeat,
)


@dataclass(frozen=True, slots=True)
class ValueSyntax:
    """The GBNF pieces of one way of writing values."""

    name: str
    any_value: str  # shared rule: any value
    any_object: str
    any_string: str
    # GBNF for the text of a string of low..high characters (the grammar gets its rules).
    bounded_text: Callable[[GbnfGrammar, int, int | None], str]
    quote: str  # GBNF literal that opens and closes a string
    ws: str  # GBNF allowed between tokens ("" for none; spaces in GBNF mean nothing)
    generic_key: str  # GBNF for an object key not named by the schema
    sort_keys: bool  # properties in sorted order, not declaration order
    key_text: Callable[[str], str]  # a property name as written
    value_gbnf: Callable[[Any], str]  # GBNF of a constant value as written
    key_forbids: str = ""  # characters a property name cannot hold in this syntax

    def string(self, chars: str) -> str:
        """A string whose characters match the GBNF ``chars``."""
        return f"{self.quote} {chars} {self.quote}"

    def ordered(self, names: list[str]) -> list[str]:
        """Property names in the order this syntax writes them."""
        return sorted(names, key=str.lower) if self.sort_keys else names


def _json_bounded_text(grammar: GbnfGrammar, low: int, high: int | None) -> str:
    return repeat(grammar.json_rule("json-char"), low, high)


def _gemma4_bounded_text(grammar: GbnfGrammar, low: int, high: int | None) -> str:
    """low..high characters (high None: no upper bound) with no "<|" among them. Rule (state,
    count) says how many were written and whether the last was "<", after which "|" may not
    come."""
    if high is not None and high <= 0:
        return ""
    if high is None and low == 0:
        return grammar.json_rule("g4-text")
    key = ("g4-text", low, high)
    if key not in grammar.memo:
        chain = low if high is None else high
        names = {
            (lt, j): grammar.reserve(f"g4-text-{low}-{high}-{'lt' if lt else 'ch'}-{j}")
            for lt in (False, True)
            for j in range(1 if lt else 0, chain)  # the first character follows no "<"
        }

        def then(lt: bool, j: int) -> str:  # what may follow the (j)th character
            if j < chain:
                return f" {names[(lt, j)]}"
            if high is not None:
                return ""
            return f" {grammar.json_rule('g4-text-lt' if lt else 'g4-text')}"

        for (lt, j), name in names.items():
            plain = "[^<|]" if lt else "[^<]"
            body = f'{plain}{then(False, j + 1)} | "<"{then(True, j + 1)}'
            grammar.define(name, f"({body})?" if j >= low else body)
        grammar.memo[key] = names[(False, 0)]
    return grammar.memo[key]


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _json_value_gbnf(value: Any) -> str:
    return gbnf_literal(_json_text(value))


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
    bounded_text=_json_bounded_text,
    quote=gbnf_literal('"'),
    ws="ws",
    generic_key="json-string",
    sort_keys=False,
    key_text=lambda name: json.dumps(name, ensure_ascii=False),
    value_gbnf=_json_value_gbnf,
)

GEMMA4_SYNTAX = ValueSyntax(
    name="Gemma 4",
    any_value="g4-value",
    any_object="g4-object",
    any_string="g4-string",
    bounded_text=_gemma4_bounded_text,
    quote=gbnf_literal(GEMMA4_STRING_MARK),
    ws="",
    generic_key="g4-key",
    sort_keys=True,
    key_text=lambda name: name,
    value_gbnf=lambda value: gbnf_literal(gemma4_value_text(value)),
    key_forbids=':{}[],<"',
)
