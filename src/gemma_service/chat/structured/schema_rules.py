"""The GBNF rules for one JSON schema, for the subset in docs/structured-output.md.

Every string the rules allow parses (as JSON, or as Gemma 4 call arguments: see
``value_syntax``) and validates against the schema. Where they are narrower than the schema
(property order, no extra properties, bounded digits and whitespace) they still only produce
valid instances; where they cannot be exact, the schema is refused.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NoReturn
from urllib.parse import unquote

from gemma_service.chat.structured.gbnf import (
    MAX_REPETITION,
    GbnfGrammar,
    LeftRecursionError,
    gbnf_literal,
    repeat,
)
from gemma_service.chat.structured.numeric_ranges import (
    LARGEST,
    integer_range_gbnf,
    number_range_gbnf,
)
from gemma_service.chat.structured.string_formats import STRING_FORMATS
from gemma_service.chat.structured.value_syntax import JSON_SYNTAX, ValueSyntax
from gemma_service.errors import InvalidRequestError

# Known JSON Schema keywords we cannot enforce. Unknown keywords and annotations (title,
# description, default, ...) are ignored, as validators ignore them.
# fmt: off
UNSUPPORTED_KEYWORDS = frozenset({
    "pattern", "patternProperties", "propertyNames", "minProperties", "maxProperties",
    "dependentRequired", "dependentSchemas", "dependencies", "if", "then", "else", "not",
    "uniqueItems", "contains", "minContains", "maxContains", "unevaluatedProperties",
    "unevaluatedItems", "additionalItems", "multipleOf", "$dynamicRef", "$dynamicAnchor",
    "$recursiveRef", "$recursiveAnchor", "contentSchema",
})
# fmt: on
_TYPE_KEYWORDS = {
    "object": frozenset({"properties", "required", "additionalProperties"}),
    "array": frozenset({"items", "prefixItems", "minItems", "maxItems"}),
    "string": frozenset({"minLength", "maxLength", "format"}),
    "number": frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}),
}
_TYPES = ("object", "array", "string", "number", "integer", "boolean", "null")
_COMBINATORS = ("$ref", "allOf", "anyOf", "oneOf")


class SchemaGrammarBuilder:
    """Adds the rules for one JSON schema (and the schemas it $refs) to a GbnfGrammar."""

    def __init__(
        self,
        grammar: GbnfGrammar,
        root: Any,
        *,
        where: str,
        param: str,
        max_string_length: int | None = None,
        syntax: ValueSyntax = JSON_SYNTAX,
    ) -> None:
        self._grammar = grammar
        self._syntax = syntax
        self._root = root
        self._where = where
        self._param = param
        # Cap for strings without maxLength: a small model can otherwise write one forever.
        self._max_string_length = max_string_length
        self._ref_rules: dict[str, str] = {}

    def build(self, hint: str) -> str:
        """The name of the rule that matches the whole schema."""
        try:
            rule = self._visit(self._root, "#", hint)
            self._grammar.check_left_recursion()
        except LeftRecursionError as exc:
            self._refuse("#", f"a $ref cycle (rule {exc.rule!r}) never consumes input")
        except RecursionError:
            self._refuse("#", "the schema nests too deeply")
        return rule

    def _refuse(self, pointer: str, problem: str) -> NoReturn:
        raise InvalidRequestError(f"{self._where}: {problem} (at {pointer})", param=self._param)

    def _visit(self, schema: Any, pointer: str, hint: str) -> str:
        if schema is True:
            return self._grammar.json_rule(self._syntax.any_value)
        if schema is False:
            self._refuse(pointer, "the schema false allows no value")
        if not isinstance(schema, Mapping):
            self._refuse(pointer, "a schema must be an object or a boolean")
        for keyword in schema:
            if keyword in UNSUPPORTED_KEYWORDS:
                self._refuse(f"{pointer}/{keyword}", f"keyword {keyword!r} is not supported")
        combinator = next((key for key in _COMBINATORS if key in schema), None)
        if combinator is not None:
            return self._combinator(combinator, schema, pointer, hint)
        if "const" in schema or "enum" in schema:
            return self._literals(schema, pointer, hint)
        rules = [self._typed(kind, schema, pointer, hint) for kind in self._types(schema, pointer)]
        if not rules:
            return self._grammar.json_rule(self._syntax.any_value)
        if len(rules) == 1:
            return rules[0]
        return self._grammar.add(hint, " | ".join(rules), leading=rules)

    def _types(self, schema: Mapping[str, Any], pointer: str) -> list[str]:
        declared = schema.get("type")
        if declared is None:  # infer from the keywords present; none at all means any value
            return [kind for kind, words in _TYPE_KEYWORDS.items() if words & schema.keys()]
        kinds = [declared] if isinstance(declared, str) else declared
        for kind in kinds:
            if kind not in _TYPES:
                self._refuse(f"{pointer}/type", f"unknown type {kind!r}")
        return list(dict.fromkeys(kinds))

    def _typed(self, kind: str, schema: Mapping[str, Any], pointer: str, hint: str) -> str:
        if kind == "object":
            return self._object(schema, pointer, hint)
        if kind == "array":
            return self._array(schema, pointer, hint)
        if kind == "string":
            return self._string(schema, pointer, hint)
        if kind in ("number", "integer"):
            return self._number(kind, schema, pointer, hint)
        return self._grammar.json_rule("json-boolean" if kind == "boolean" else "json-null")

    def _combinator(self, key: str, schema: Mapping[str, Any], pointer: str, hint: str) -> str:
        constraints = [k for k in schema if k != key and _constrains(k)]
        if constraints:
            self._refuse(pointer, f"{key!r} next to {constraints[0]!r} is not supported")
        if key == "$ref":
            return self._ref(schema["$ref"], pointer)
        branches = schema[key]
        if key == "allOf" and len(branches) != 1:
            self._refuse(f"{pointer}/allOf", "allOf with more than one schema is not supported")
        rules = [
            self._visit(branch, f"{pointer}/{key}/{i}", f"{hint}-{i}")
            for i, branch in enumerate(branches)
        ]
        rules = list(dict.fromkeys(rules))
        if len(rules) == 1:
            return rules[0]
        return self._grammar.add(hint, " | ".join(rules), leading=rules)

    def _ref(self, ref: str, pointer: str) -> str:
        if ref in self._ref_rules:
            return self._ref_rules[ref]
        if ref != "#" and not ref.startswith("#/"):
            self._refuse(f"{pointer}/$ref", f"$ref {ref!r} is not supported; use '#/$defs/...'")
        target: Any = self._root
        for part in ref[2:].split("/") if ref != "#" else []:
            key = unquote(part).replace("~1", "/").replace("~0", "~")
            if isinstance(target, Mapping) and key in target:
                target = target[key]
            elif isinstance(target, list) and key.isdigit() and int(key) < len(target):
                target = target[int(key)]
            else:
                self._refuse(f"{pointer}/$ref", f"$ref {ref!r} does not resolve")
        name = self._grammar.reserve("ref-" + (ref.rsplit("/", 1)[-1] or "root"))
        self._ref_rules[ref] = name  # before visiting, so recursive references find it
        body = self._visit(target, ref, name)
        self._grammar.define(name, body, leading=[body])
        return name

    def _literals(self, schema: Mapping[str, Any], pointer: str, hint: str) -> str:
        key = "const" if "const" in schema else "enum"
        extra = [k for k in schema if k not in (key, "type") and _constrains(k)]
        if extra:
            self._refuse(pointer, f"{key!r} next to {extra[0]!r} is not supported")
        values = [schema["const"]] if key == "const" else list(schema["enum"])
        kinds = self._types(schema, pointer) if "type" in schema else list(_TYPES)
        values = [v for v in values if any(_is_instance_of(v, kind) for kind in kinds)]
        if not values:
            self._refuse(f"{pointer}/{key}", f"no {key} value has the declared type")
        try:
            literals = [self._syntax.value_gbnf(v) for v in values]
        except ValueError:
            self._refuse(f"{pointer}/{key}", "NaN and infinity are not JSON")
        return self._grammar.add(hint, " | ".join(dict.fromkeys(literals)))

    def _object(self, schema: Mapping[str, Any], pointer: str, hint: str) -> str:
        properties: Mapping[str, Any] = schema.get("properties", {})
        required = schema.get("required", [])
        for name in required:
            if name not in properties:
                self._refuse(
                    f"{pointer}/required",
                    f"required property {name!r} is not declared in properties",
                )
        ws = self._syntax.ws
        if "properties" in schema:  # only the declared properties, in the syntax's order
            if not properties:
                return self._grammar.add(hint, f'"{{" {ws} "}}"')
            names = self._syntax.ordered(list(properties))
            members = [self._member(name, properties[name], pointer, hint) for name in names]
            return self._ordered_members(members, [n in required for n in names], hint)
        additional = schema.get("additionalProperties")
        if additional is None or additional is True:
            return self._grammar.json_rule(self._syntax.any_object)
        if additional is False:
            return self._grammar.add(hint, f'"{{" {ws} "}}"')
        value = self._visit(additional, f"{pointer}/additionalProperties", f"{hint}-value")
        member = f'{self._syntax.generic_key} {ws} ":" {ws} {value}'
        return self._grammar.add(hint, f'"{{" {ws} ({member} ({ws} "," {ws} {member})* {ws})? "}}"')

    def _member(self, name: str, schema: Any, pointer: str, hint: str) -> str:
        escaped = name.replace("~", "~0").replace("/", "~1")
        if any(c in name for c in self._syntax.key_forbids):
            self._refuse(
                f"{pointer}/properties/{escaped}",
                f"property name {name!r} cannot be written in {self._syntax.name}'s syntax",
            )
        value = self._visit(schema, f"{pointer}/properties/{escaped}", f"{hint}-{name}")
        key = gbnf_literal(self._syntax.key_text(name))
        ws = self._syntax.ws
        return self._grammar.add(f"{hint}-{name}-kv", f'{key} {ws} ":" {ws} {value}')

    def _ordered_members(self, members: list[str], required: list[bool], hint: str) -> str:
        """An object of ``members`` in order, where optional ones may be left out."""
        count = len(members)
        ws = self._syntax.ws
        # tails[i]: members i.. after at least one member has been written (leading comma).
        tails: list[str | None] = [None] * (count + 1)
        for i in range(count - 1, 0, -1):
            step = f'{ws} "," {ws} {members[i]}'
            step = step if required[i] else f"({step})?"
            tails[i] = self._grammar.add(f"{hint}-rest", f"{step} {tails[i + 1] or ''}".strip())
        first_required = required.index(True) if True in required else count
        starts = [
            f"{members[i]} {tails[i + 1] or ''}".strip()
            for i in range(min(first_required, count - 1) + 1)
        ]
        inner = starts[0] if len(starts) == 1 else f"({' | '.join(starts)})"
        if first_required == count:  # every member optional: the object may be empty
            return self._grammar.add(hint, f'"{{" {ws} ({inner} {ws})? "}}"')
        return self._grammar.add(hint, f'"{{" {ws} {inner} {ws} "}}"')

    def _array(self, schema: Mapping[str, Any], pointer: str, hint: str) -> str:
        low, high = self._count_bounds(schema, "Items", pointer)
        items = schema.get("items", True)
        ws = self._syntax.ws
        if "prefixItems" in schema:
            return self._tuple(schema, pointer, hint, low, high)
        if items is False or high == 0:
            if low > 0:
                self._refuse(pointer, "minItems cannot be met when no items are allowed")
            return self._grammar.add(hint, f'"[" {ws} "]"')
        element = self._visit(items, f"{pointer}/items", f"{hint}-item")
        more = repeat(
            f'{ws} "," {ws} {element}', max(low - 1, 0), None if high is None else high - 1
        )
        elements = f"{element} {more}".strip()
        if low == 0:
            return self._grammar.add(hint, f'"[" {ws} ({elements} {ws})? "]"')
        return self._grammar.add(hint, f'"[" {ws} {elements} {ws} "]"')

    def _tuple(
        self, schema: Mapping[str, Any], pointer: str, hint: str, low: int, high: int | None
    ) -> str:
        prefix = schema["prefixItems"]
        if "items" in schema and schema["items"] is not False:
            self._refuse(f"{pointer}/items", "items next to prefixItems is not supported")
        if low > len(prefix) or (high is not None and high < len(prefix)):
            self._refuse(
                pointer, "minItems/maxItems other than the prefixItems length is not supported"
            )
        elements = [
            self._visit(sub, f"{pointer}/prefixItems/{i}", f"{hint}-{i}")
            for i, sub in enumerate(prefix)
        ]
        ws = self._syntax.ws
        inner = f' {ws} "," {ws} '.join(elements)
        body = f'"[" {ws} {inner} {ws} "]"' if elements else f'"[" {ws} "]"'
        return self._grammar.add(hint, body)

    def _string(self, schema: Mapping[str, Any], pointer: str, hint: str) -> str:
        low, high = self._count_bounds(schema, "Length", pointer)
        fmt = schema.get("format")
        if fmt is not None:
            if fmt not in STRING_FORMATS:
                supported = ", ".join(STRING_FORMATS)
                self._refuse(
                    f"{pointer}/format",
                    f"string format {fmt!r} is not supported (supported: {supported})",
                )
            if "minLength" in schema or "maxLength" in schema:
                self._refuse(pointer, "format next to minLength/maxLength is not supported")
            return self._grammar.add(f"{hint}-{fmt}", self._syntax.string(STRING_FORMATS[fmt]))
        if high is None and self._max_string_length is not None:
            high = max(low, self._max_string_length)
        if low == 0 and high is None:
            return self._grammar.json_rule(self._syntax.any_string)
        text = self._syntax.bounded_text(self._grammar, low, high)
        return self._grammar.add(hint, self._syntax.string(text))

    def _count_bounds(
        self, schema: Mapping[str, Any], suffix: str, pointer: str
    ) -> tuple[int, int | None]:
        """minItems/maxItems or minLength/maxLength; a maximum above the cap is lowered to it
        (the output stays valid), a minimum above it is refused."""
        low = int(schema.get(f"min{suffix}", 0))
        high = schema.get(f"max{suffix}")
        if low > MAX_REPETITION:
            self._refuse(
                f"{pointer}/min{suffix}", f"min{suffix} above {MAX_REPETITION} is not supported"
            )
        if high is not None and int(high) < low:
            self._refuse(pointer, f"max{suffix} is below min{suffix}: no value fits")
        return low, None if high is None else min(int(high), MAX_REPETITION)

    def _number(self, kind: str, schema: Mapping[str, Any], pointer: str, hint: str) -> str:
        bounds = {k: schema[k] for k in _TYPE_KEYWORDS["number"] if k in schema}
        if not bounds:
            return self._grammar.json_rule("json-integer" if kind == "integer" else "json-number")
        if kind == "integer":
            low, high = _integer_bounds(bounds)
        else:
            low, high = self._number_bounds(bounds, pointer)
        # Bounds past 16 digits (int64 limits, say) add nothing to the 16-digit default.
        low = None if low is not None and low < -LARGEST else low
        high = None if high is not None and high > LARGEST else high
        if (low is not None and low > LARGEST) or (high is not None and high < -LARGEST):
            self._refuse(pointer, "numbers beyond 16 digits are not supported")
        if low is not None and high is not None and low > high:
            self._refuse(pointer, f"no {kind} lies within the bounds")
        body = integer_range_gbnf(low, high) if kind == "integer" else number_range_gbnf(low, high)
        return self._grammar.add(f"{hint}-{kind}", body)

    def _number_bounds(self, bounds: dict[str, Any], pointer: str) -> tuple[int | None, int | None]:
        for key, value in bounds.items():
            if key.startswith("exclusive"):
                self._refuse(
                    f"{pointer}/{key}",
                    f"{key} on a number is not supported (use minimum/maximum or type integer)",
                )
            if not float(value).is_integer():
                self._refuse(
                    f"{pointer}/{key}", f"a non-integer {key} on a number is not supported"
                )
        low, high = bounds.get("minimum"), bounds.get("maximum")
        return (None if low is None else int(low)), (None if high is None else int(high))


def _integer_bounds(bounds: dict[str, Any]) -> tuple[int | None, int | None]:
    lows = [math.ceil(bounds["minimum"])] if "minimum" in bounds else []
    if "exclusiveMinimum" in bounds:
        lows.append(math.floor(bounds["exclusiveMinimum"]) + 1)
    highs = [math.floor(bounds["maximum"])] if "maximum" in bounds else []
    if "exclusiveMaximum" in bounds:
        highs.append(math.ceil(bounds["exclusiveMaximum"]) - 1)
    return (max(lows) if lows else None), (min(highs) if highs else None)


def _constrains(keyword: str) -> bool:
    """Whether a keyword next to a combinator would narrow it (annotations and unknowns don't)."""
    known = {"type", "enum", "const", *_COMBINATORS}.union(*_TYPE_KEYWORDS.values())
    return keyword in known


def _is_instance_of(value: Any, kind: str) -> bool:
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    expected = {"object": dict, "array": list, "string": str, "boolean": bool}
    return value is None if kind == "null" else isinstance(value, expected[kind])
