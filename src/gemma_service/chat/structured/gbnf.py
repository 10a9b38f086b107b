"""GBNF text building: a rule registry, literal escaping, and the value rules grammars share
(JSON's, and those of Gemma 4's call-argument syntax).

Rule names are limited to ``[a-zA-Z0-9-]`` because llama.cpp's grammar parser accepts nothing
else. The registry refuses left recursion, which llama.cpp would reject at request time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# llama.cpp refuses repetition counts above 2000 ("exceeds sane defaults"); stay well below.
MAX_REPETITION = 1000

# At most one space or newline between JSON tokens: with unbounded whitespace a small model can
# emit spaces until max_tokens and never close the value.
JSON_RULES: dict[str, str] = {
    "ws": r"[ \n]?",
    "json-char": r'[^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})',
    "json-string": r'"\"" json-char* "\""',
    # Digit counts are bounded for the same reason as whitespace: no endless runs of digits.
    "json-integer": r'"-"? ("0" | [1-9] [0-9]{0,15})',
    "json-number": r'json-integer ("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,2})?',
    "json-boolean": r'"true" | "false"',
    "json-null": r'"null"',
    "json-value": (
        "json-object | json-array | json-string | json-number | json-boolean | json-null"
    ),
    "json-member": r'json-string ws ":" ws json-value',
    "json-object": r'"{" ws (json-member (ws "," ws json-member)* ws)? "}"',
    "json-array": r'"[" ws (json-value (ws "," ws json-value)* ws)? "]"',
}
# Gemma 4 writes call arguments in its own syntax: bare keys, strings between <|"|> marks, no
# whitespace (``{city:<|"|>Paris<|"|>,days:3}``). String text never holds "<|", so a string ends
# exactly where a parser looking for the mark ends it. The marks are matched as text, which
# their single tokens are too: llama.cpp's token syntax (``<|"|>``) must not follow text a
# token could run on from (a token's piece matched partly as text, partly as a token element,
# passes its check and then aborts the process when accepted).
GEMMA4_STRING_MARK = '<|"|>'
GEMMA4_RULES: dict[str, str] = {
    "g4-text": r'([^<] g4-text | "<" g4-text-lt)?',
    "g4-text-lt": r'([^<|] g4-text | "<" g4-text-lt)?',  # just after a "<"
    "g4-string": r'"<|\"|>" g4-text "<|\"|>"',
    "g4-key": r"[^:{}\[\],<\x00-\x20\x22]{1,64}",
    "g4-member": r'g4-key ":" g4-value',
    "g4-object": r'"{" (g4-member ("," g4-member)*)? "}"',
    "g4-array": r'"[" (g4-value ("," g4-value)*)? "]"',
    "g4-value": "g4-object | g4-array | g4-string | json-number | json-boolean | json-null",
}
SHARED_RULES: dict[str, str] = {**JSON_RULES, **GEMMA4_RULES}
# Which shared rules may begin with another rule (for the left-recursion check).
_SHARED_LEADING: dict[str, tuple[str, ...]] = {
    "g4-member": ("g4-key",),
    "g4-value": (
        "g4-object",
        "g4-array",
        "g4-string",
        "json-number",
        "json-boolean",
        "json-null",
    ),
    "json-string": (),
    "json-number": ("json-integer",),
    "json-value": (
        "json-object",
        "json-array",
        "json-string",
        "json-number",
        "json-boolean",
        "json-null",
    ),
    "json-member": ("json-string",),
}

_NOT_NAME_CHAR = re.compile(r"[^a-zA-Z0-9]+")


def gbnf_literal(text: str) -> str:
    """``text`` as a GBNF string literal (quoted, with llama.cpp's escapes)."""
    out = ['"']
    for char in text:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02X}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def repeat(expr: str, low: int, high: int | None) -> str:
    """GBNF for ``expr`` repeated ``low`` to ``high`` times (None: unbounded); "" for none."""
    if high is not None and high <= 0:
        return ""
    group = expr if _is_atom(expr) else f"({expr})"
    if high is None:
        return f"{group}*" if low == 0 else f"{group}{{{low},}}"
    if low == high:
        return group if low == 1 else f"{group}{{{low}}}"
    if (low, high) == (0, 1):
        return f"{group}?"
    return f"{group}{{{low},{high}}}"


def _is_atom(expr: str) -> bool:
    return re.fullmatch(r"[a-zA-Z0-9-]+|\[[^\]]*\]|\"[^\"\\]*\"", expr) is not None


class LeftRecursionError(ValueError):
    """A rule can reach itself without consuming input; ``rule`` names one rule of the cycle."""

    def __init__(self, rule: str) -> None:
        super().__init__(f"rule {rule!r} is left-recursive")
        self.rule = rule


class GbnfGrammar:
    """Collects named rules and renders them as one grammar with root rule ``root``."""

    def __init__(self) -> None:
        self._rules: dict[str, str] = {}
        self._leading: dict[str, tuple[str, ...]] = {}
        self._reserved: set[str] = set()
        self._name_by_body: dict[str, str] = {}
        self.memo: dict[tuple[object, ...], str] = {}  # rule families built once per grammar

    def reserve(self, hint: str) -> str:
        """A fresh rule name based on ``hint``, to be defined later (allows recursion)."""
        # Long names cost nothing in llama.cpp but make grammars hard to read in logs.
        base = _NOT_NAME_CHAR.sub("-", hint).strip("-").lower()[:48].strip("-") or "rule"
        name, suffix = base, 2
        while name in self._reserved or name in SHARED_RULES or name == "root":
            name, suffix = f"{base}-{suffix}", suffix + 1
        self._reserved.add(name)
        return name

    def define(self, name: str, body: str, leading: Iterable[str] = ()) -> str:
        """Set the body of a reserved rule; ``leading`` lists rules the body may start with."""
        self._rules[name] = body
        self._leading[name] = tuple(leading)
        return name

    def add(self, hint: str, body: str, leading: Iterable[str] = ()) -> str:
        """A rule with ``body``, reusing an existing rule with the same body."""
        if body in self._name_by_body:
            return self._name_by_body[body]
        name = self.define(self.reserve(hint), body, leading)
        self._name_by_body[body] = name
        return name

    def json_rule(self, name: str) -> str:
        """Include the shared rule ``name`` (JSON's or Gemma 4's, with what it uses)."""
        if name not in self._rules:
            self._rules[name] = SHARED_RULES[name]
            self._leading[name] = _SHARED_LEADING.get(name, ())
            for used in _rule_references(SHARED_RULES[name]):
                self.json_rule(used)
        return name

    def check_left_recursion(self) -> None:
        """Raise LeftRecursionError if some rule can reach itself without consuming input."""
        _check_left_recursion(self._leading)

    def render(self, root_body: str, root_leading: Iterable[str] = ()) -> str:
        """The grammar text; raises LeftRecursionError if llama.cpp would reject it."""
        bodies = [root_body, *self._rules.values()]
        for used in {name for body in bodies for name in _rule_references(body)}:
            if used in SHARED_RULES:
                self.json_rule(used)
        _check_left_recursion(dict(self._leading, root=tuple(root_leading)))
        lines = [f"root ::= {root_body}"]
        lines += [f"{name} ::= {body}" for name, body in self._rules.items()]
        return "\n".join(lines) + "\n"


def _rule_references(body: str) -> list[str]:
    """Rule names used in ``body`` (outside literals and character classes)."""
    # Literals, character classes, repetition counts and tokens (<|tool_call>, <[42]>).
    stripped = re.sub(
        r'"(?:[^"\\]|\\.)*"|\[(?:[^\]\\]|\\.)*\]|\{[0-9,]*\}|<(?:\[[0-9]+\]|[^<>\s]+)>',
        " ",
        body,
    )
    return re.findall(r"[a-zA-Z][a-zA-Z0-9-]*", stripped)


def _check_left_recursion(leading: dict[str, tuple[str, ...]]) -> None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(rule: str) -> None:
        state[rule] = 1
        for nxt in leading.get(rule, ()):
            if state.get(nxt) == 1:
                raise LeftRecursionError(nxt)
            if nxt not in state:
                visit(nxt)
        state[rule] = 2

    for rule in leading:
        if rule not in state:
            visit(rule)
