"""JSON Schema → GBNF: what each supported schema lets llama.cpp generate, and what is refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gemma_service.chat.structured import (
    JSON_OBJECT_GBNF,
    response_format_grammar,
    schema_to_gbnf,
    validate_instance,
)
from gemma_service.errors import InvalidRequestError

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "email": {"type": "string"},
    },
    "required": ["name"],
}
TREE = {
    "$defs": {
        "node": {
            "type": "object",
            "properties": {
                "value": {"type": "integer"},
                "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
            },
            "required": ["value"],
        }
    },
    "$ref": "#/$defs/node",
}


def nested_arrays(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "array", "items": schema}
    return schema


# (schema, texts llama.cpp must accept under the grammar, invalid texts it must refuse)
SUPPORTED: list[Any] = [
    pytest.param(
        PERSON,
        ['{"name": "Ada"}', '{"name":"Ada","age":36}', '{\n"name": "Ada",\n"email": "a@b.c"\n}'],
        ["{}", '{"age": 36}', '{"name": "Ada",}', '{"name": 5}'],
        id="required-and-optional-properties",
    ),
    pytest.param(
        {"type": "object", "properties": {"a": {"type": "boolean"}, "b": {"type": "null"}}},
        ["{}", '{"a": true}', '{"b": null}', '{"a": false, "b": null}'],
        ["{,}", '{"a": 1}', '{"a": true,}'],
        id="all-properties-optional",
    ),
    pytest.param(
        {"type": "object"},
        ["{}", '{"x": [1, {"y": null}], "z": "w"}'],
        ["[]", '"x"', "{x: 1}"],
        id="free-form-object",
    ),
    pytest.param(
        {"type": "object", "additionalProperties": {"type": "integer"}},
        ["{}", '{"a": 1, "b": -2}'],
        ['{"a": "x"}'],
        id="map-of-integers",
    ),
    pytest.param(
        {"type": "object", "properties": {}}, ["{}", "{ }"], ['{"a": 1}'], id="no-properties"
    ),
    pytest.param(
        {"enum": ["red", "green", 3, None, {"k": [1]}]},
        ['"red"', "3", "null", '{"k":[1]}'],
        ['"blue"', "4", '"Red"'],
        id="enum-of-mixed-values",
    ),
    pytest.param({"type": "string", "enum": ["a", 1]}, ['"a"'], ["1"], id="enum-filtered-by-type"),
    pytest.param({"const": "fixed"}, ['"fixed"'], ['"other"'], id="const"),
    pytest.param({"type": ["string", "null"]}, ['"x"', "null"], ["1", "true"], id="nullable"),
    pytest.param(
        {"anyOf": [{"type": "integer"}, PERSON]},
        ["5", '{"name": "Ada"}'],
        ['"5"', "{}"],
        id="anyOf",
    ),
    pytest.param(
        {"oneOf": [{"type": "boolean"}, {"type": "null"}]}, ["true", "null"], ["0"], id="oneOf"
    ),
    pytest.param(
        TREE,
        ['{"value": 1, "children": [{"value": 2}, {"value": 3, "children": []}]}'],
        ['{"value": 1, "children": [{}]}'],
        id="recursive-ref",
    ),
    pytest.param(
        {
            "type": "object",
            "properties": {"next": {"anyOf": [{"$ref": "#"}, {"type": "null"}]}},
            "required": ["next"],
        },
        ['{"next": {"next": null}}'],
        ['{"next": {}}'],
        id="ref-to-root",
    ),
    pytest.param(
        {"definitions": {"flag": {"type": "boolean"}}, "allOf": [{"$ref": "#/definitions/flag"}]},
        ["true"],
        ['"true"'],
        id="definitions-and-single-allOf",
    ),
    pytest.param(
        {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 3},
        ["[1]", "[1, 2, 3]", "[\n1,\n2\n]"],
        ["[]", "[1, 2, 3, 4]", "[1,]", '["1"]'],
        id="bounded-array",
    ),
    pytest.param({"type": "array"}, ["[]", '[1, "a", null, [true]]'], ["{}"], id="any-array"),
    pytest.param(
        {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": False},
        ['["a", 1]'],
        ['["a", 1, 2]', "[1, 1]"],
        id="tuple",
    ),
    pytest.param(
        {"type": "string", "minLength": 2, "maxLength": 4},
        ['"ab"', '"abcd"', '"a\\"c"', '"é✓x"'],
        ['"a"', '"abcde"'],
        id="string-length",
    ),
    pytest.param(
        {"type": "string"},
        ['""', '"line\\nbreak \\u00e9 ✓"'],
        ['"raw\nnewline"', '"bad \\x escape"', '"unclosed'],
        id="string-escapes",
    ),
    pytest.param(
        {"type": "string", "format": "date"},
        ['"2024-02-28"', '"1999-12-31"'],
        ['"2024-02-30"', '"2024-13-01"', '"24-01-01"'],
        id="date",
    ),
    pytest.param(
        {"type": "string", "format": "date-time"},
        ['"2024-05-06T07:08:09Z"', '"2024-05-06T07:08:09.123+02:00"'],
        ['"2024-05-06 07:08:09"', '"2024-05-06T25:00:00Z"'],
        id="date-time",
    ),
    pytest.param({"type": "string", "format": "time"}, ['"07:08:09Z"'], ['"7:08"'], id="time"),
    pytest.param(
        {"type": "string", "format": "uuid"},
        ['"123e4567-e89b-12d3-a456-426614174000"'],
        ['"123e4567e89b12d3a456426614174000"'],
        id="uuid",
    ),
    pytest.param(
        {"type": "string", "format": "ipv4"},
        ['"192.168.0.1"', '"0.0.0.0"'],
        ['"256.1.1.1"', '"1.2.3"'],
        id="ipv4",
    ),
    pytest.param(
        {"type": "integer", "minimum": -5, "maximum": 12},
        ["-5", "0", "7", "12"],
        ["-6", "13", "1.5", "100"],
        id="integer-range",
    ),
    pytest.param(
        {"type": "integer", "exclusiveMinimum": 0}, ["1", "99"], ["0", "-1"], id="positive-int"
    ),
    pytest.param(
        {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1},
        ["0", "-9007199254740993", "1234567890123456"],
        ["1.5"],
        id="int64-bounds",
    ),
    pytest.param(
        {"type": "number", "minimum": 0, "maximum": 1},
        ["0", "0.5", "1", "1.000"],
        ["1.5", "-0.1", "2"],
        id="number-range",
    ),
    pytest.param(
        {"type": "number"},
        ["-1.5e10", "0", "3.25", "42"],
        [".5", "1.", "NaN", "+1", "1e"],
        id="number",
    ),
    pytest.param({"type": "boolean"}, ["true", "false"], ["True", "1"], id="boolean"),
    pytest.param(
        {
            "type": "object",
            "properties": {'naïve "q"\\': {"type": "integer"}},
            "required": ['naïve "q"\\'],
        },
        ['{"naïve \\"q\\"\\\\": 1}'],
        ['{"naïve \\"q\\"": 1}'],
        id="property-name-escaping",
    ),
    pytest.param({}, ['{"a": [1]}', '"s"', "null"], ["nul", "{"], id="empty-schema-any-value"),
    pytest.param(
        nested_arrays(60), ["[" * 60 + '"x"' + "]" * 60], ["[" * 60 + "1" + "]" * 60], id="deep"
    ),
]


@pytest.mark.parametrize(("schema", "accepted", "rejected"), SUPPORTED)
def test_grammar_accepts_valid_instances_and_refuses_invalid_ones(
    grammar_oracle: Any, schema: dict[str, Any], accepted: list[str], rejected: list[str]
) -> None:
    gbnf = schema_to_gbnf(schema)
    for text in accepted:
        assert validate_instance(schema, json.loads(text)) == [], f"bad test example {text}"
        assert grammar_oracle.matches(gbnf, text), f"grammar refused valid {text!r}:\n{gbnf}"
    for text in rejected:
        assert not grammar_oracle.matches(gbnf, text), f"grammar allowed {text!r}:\n{gbnf}"


# Valid instances the grammar deliberately never produces (docs/structured-output.md).
NARROWER: list[Any] = [
    pytest.param(PERSON, '{"age": 36, "name": "Ada"}', id="properties-in-declared-order"),
    pytest.param(PERSON, '{"name": "Ada", "extra": 1}', id="no-undeclared-properties"),
    pytest.param(PERSON, '{"name":  "Ada"}', id="at-most-one-whitespace"),
    pytest.param(PERSON, ' {"name": "Ada"}', id="no-leading-whitespace"),
    pytest.param({"const": {"k": [1, 2]}}, '{"k": [1, 2]}', id="literals-are-compact"),
    pytest.param({"type": "integer"}, "12345678901234567", id="at-most-16-digits"),
    pytest.param({"type": "string", "maxLength": 5000}, json.dumps("x" * 1001), id="length-cap"),
]


@pytest.mark.parametrize(("schema", "text"), NARROWER)
def test_grammar_is_narrower_than_the_schema_only_in_documented_ways(
    grammar_oracle: Any, schema: dict[str, Any], text: str
) -> None:
    assert validate_instance(schema, json.loads(text)) == []
    assert not grammar_oracle.matches(schema_to_gbnf(schema), text)


def test_optional_string_cap_bounds_only_unbounded_strings(grammar_oracle: Any) -> None:
    schema = {
        "type": "object",
        "properties": {"free": {"type": "string"}, "long": {"type": "string", "minLength": 12}},
    }
    gbnf = schema_to_gbnf(schema, max_string_length=10)
    assert grammar_oracle.matches(gbnf, json.dumps({"free": "x" * 10}))
    assert not grammar_oracle.matches(gbnf, json.dumps({"free": "x" * 11}))
    assert grammar_oracle.matches(gbnf, json.dumps({"long": "x" * 12}))  # never below minLength


def test_capped_max_length_still_allows_the_cap(grammar_oracle: Any) -> None:
    gbnf = schema_to_gbnf({"type": "string", "maxLength": 5000})
    assert grammar_oracle.matches(gbnf, json.dumps("x" * 1000))


# (schema, words the 400 message must contain)
REFUSED: list[Any] = [
    pytest.param(nested_arrays(5000), ["nests too deeply"], id="absurd-nesting"),
    pytest.param({"type": "string", "pattern": "^a"}, ["'pattern'", "#/pattern"], id="pattern"),
    pytest.param(
        {"type": "object", "properties": {"zip": {"type": "string", "pattern": "[0-9]+"}}},
        ["'pattern'", "#/properties/zip/pattern"],
        id="nested-pattern",
    ),
    pytest.param({"if": {}, "then": {}}, ["'if'"], id="if-then"),
    pytest.param({"not": {"type": "null"}}, ["'not'"], id="not"),
    pytest.param({"type": "array", "uniqueItems": True}, ["'uniqueItems'"], id="uniqueItems"),
    pytest.param({"type": "object", "patternProperties": {}}, ["'patternProperties'"], id="pp"),
    pytest.param({"type": "object", "minProperties": 1}, ["'minProperties'"], id="minProperties"),
    pytest.param({"type": "integer", "multipleOf": 2}, ["'multipleOf'"], id="multipleOf"),
    pytest.param({"allOf": [{"type": "integer"}, {"minimum": 1}]}, ["allOf"], id="allOf-two"),
    pytest.param({"$ref": "https://example.com/s.json"}, ["$ref", "not supported"], id="ext-ref"),
    pytest.param({"$ref": "#/$defs/missing"}, ["does not resolve"], id="dangling-ref"),
    pytest.param(
        {"$defs": {"a": {"anyOf": [{"$ref": "#/$defs/a"}, {"type": "null"}]}}, "$ref": "#/$defs/a"},
        ["cycle"],
        id="left-recursive-ref",
    ),
    pytest.param({"type": "string", "format": "email"}, ["'email'", "#/format"], id="email"),
    pytest.param({"type": "string", "format": "date", "maxLength": 9}, ["format"], id="fmt-len"),
    pytest.param({"type": "number", "exclusiveMinimum": 0}, ["exclusiveMinimum"], id="excl-num"),
    pytest.param({"type": "number", "maximum": 0.5}, ["maximum"], id="fractional-bound"),
    pytest.param({"type": "integer", "minimum": 3, "maximum": 2}, ["no integer"], id="empty-range"),
    pytest.param({"type": "integer", "minimum": 10**17}, ["16 digits"], id="huge-minimum"),
    pytest.param(
        {"type": "object", "properties": {}, "required": ["id"]}, ["'id'"], id="undeclared-req"
    ),
    pytest.param(False, ["no value"], id="false-schema"),
    pytest.param({"type": "integer", "enum": ["a"]}, ["no enum value"], id="enum-wrong-type"),
    pytest.param({"type": "object", "anyOf": [{}]}, ["next to 'type'"], id="anyOf-with-type"),
    pytest.param({"type": "array", "minItems": 5000}, ["minItems"], id="huge-minItems"),
    pytest.param({"type": "array", "minItems": 3, "maxItems": 2}, ["no value"], id="min>max"),
    pytest.param({"type": "string", "minLength": 3, "maxLength": 2}, ["no value"], id="len"),
    pytest.param(
        {"type": "array", "prefixItems": [{}], "items": {"type": "integer"}},
        ["prefixItems"],
        id="prefixItems-with-items",
    ),
    pytest.param({"type": 5}, ["not a valid JSON Schema"], id="invalid-schema"),
    pytest.param({"type": "float"}, ["not a valid JSON Schema"], id="unknown-type"),
]


@pytest.mark.parametrize(("schema", "words"), REFUSED)
def test_unsupported_schemas_are_a_400_naming_the_problem(schema: Any, words: list[str]) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        schema_to_gbnf(schema)
    error = raised.value
    assert error.status_code == 400
    assert error.param == "response_format"
    assert error.message.startswith("response_format.json_schema.schema: ")
    for word in words:
        assert word in error.message


def test_every_generated_grammar_parses_in_llama_cpp(grammar_oracle: Any) -> None:
    schemas = [param.values[0] for param in SUPPORTED + NARROWER]
    for schema in schemas:
        gbnf = schema_to_gbnf(schema)
        assert grammar_oracle.parses(gbnf), gbnf


def test_json_object_format_allows_any_object_and_nothing_else(grammar_oracle: Any) -> None:
    assert grammar_oracle.matches(JSON_OBJECT_GBNF, '{"a": [1, 2.5, {"b": null}], "c": "d"}')
    assert grammar_oracle.matches(JSON_OBJECT_GBNF, "{}")
    for text in ["[1]", '"x"', "12", '{"a": 1} trailing', '{"a": 1']:
        assert not grammar_oracle.matches(JSON_OBJECT_GBNF, text), text


def test_response_format_picks_the_grammar() -> None:
    assert response_format_grammar(None) is None
    assert response_format_grammar({"type": "text"}) is None
    assert response_format_grammar({"type": "json_object"}) == JSON_OBJECT_GBNF
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    wrapped = {"type": "json_schema", "json_schema": {"name": "r", "schema": schema}}
    assert response_format_grammar(wrapped) == schema_to_gbnf(schema)


@pytest.mark.parametrize(
    ("response_format", "param"),
    [
        ({"type": "yaml"}, "response_format.type"),
        ({"type": "json_schema"}, "response_format.json_schema"),
        ({"type": "json_schema", "json_schema": {"name": "x"}}, "response_format.json_schema"),
        ({"type": "json_schema", "json_schema": {"schema": {"pattern": "a"}}}, "response_format"),
    ],
)
def test_bad_response_formats_are_400s(response_format: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        response_format_grammar(response_format)
    assert raised.value.param == param


def test_validate_instance_reports_where_and_what() -> None:
    assert validate_instance(PERSON, {"name": "Ada", "age": 3}) == []
    problems = validate_instance(PERSON, {"name": "Ada", "age": "three"})
    assert len(problems) == 1
    assert problems[0].startswith("age: ")
    assert validate_instance({"type": "string", "format": "date"}, "2024-02-30") != []
