"""Structured output: ``response_format`` → a GBNF grammar, and checking outputs against schemas.

The grammar goes into ``SamplingParams.grammar``; llama.cpp then samples only text the grammar
accepts, so the reply always parses and validates, even from a small base model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for

from gemma_service.chat.structured.gbnf import GbnfGrammar
from gemma_service.chat.structured.schema_rules import SchemaGrammarBuilder
from gemma_service.errors import InvalidRequestError

_JSON_SCHEMA_WHERE = "response_format.json_schema.schema"


def _json_object_gbnf() -> str:
    return GbnfGrammar().render("json-object", ["json-object"])


# Any JSON object (``response_format: {"type": "json_object"}``).
JSON_OBJECT_GBNF = _json_object_gbnf()


def schema_to_gbnf(
    schema: Mapping[str, Any] | bool,
    *,
    where: str = _JSON_SCHEMA_WHERE,
    param: str = "response_format",
    max_string_length: int | None = None,
) -> str:
    """GBNF (root rule ``root``) for the instances of ``schema``; InvalidRequestError if the
    schema is invalid or uses a feature we cannot enforce (``where`` prefixes the message).

    ``max_string_length`` caps strings that have no maxLength (narrower, still valid).
    """
    check_schema(schema, where=where, param=param)
    grammar = GbnfGrammar()
    builder = SchemaGrammarBuilder(
        grammar, schema, where=where, param=param, max_string_length=max_string_length
    )
    rule = builder.build("value")
    return grammar.render(rule, [rule])


def check_schema(schema: Any, *, where: str, param: str) -> None:
    """Raise InvalidRequestError unless ``schema`` is a valid JSON Schema."""
    if isinstance(schema, bool):
        return
    if not isinstance(schema, Mapping):
        raise InvalidRequestError(f"{where}: a schema must be an object", param=param)
    schema = dict(schema)
    validator_class = validator_for(schema, default=Draft202012Validator)
    try:
        validator_class.check_schema(schema)
    except RecursionError:
        raise InvalidRequestError(f"{where}: the schema nests too deeply", param=param) from None
    except SchemaError as exc:
        at = "/".join(str(p) for p in exc.absolute_path)
        raise InvalidRequestError(
            f"{where}: not a valid JSON Schema: {exc.message} (at #/{at})", param=param
        ) from None


def response_format_grammar(
    response_format: Mapping[str, Any] | None, *, max_string_length: int | None = None
) -> str | None:
    """The grammar for an OpenAI ``response_format`` object; None for plain text."""
    if response_format is None:
        return None
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return JSON_OBJECT_GBNF
    if kind != "json_schema":
        raise InvalidRequestError(
            f"response_format.type must be 'text', 'json_object' or 'json_schema', not {kind!r}",
            param="response_format.type",
        )
    wrapper = response_format.get("json_schema")
    if not isinstance(wrapper, Mapping) or "schema" not in wrapper:
        raise InvalidRequestError(
            "response_format.json_schema.schema is required for type 'json_schema'",
            param="response_format.json_schema",
        )
    return schema_to_gbnf(wrapper["schema"], max_string_length=max_string_length)


def validate_instance(schema: Mapping[str, Any] | bool, instance: Any) -> list[str]:
    """What is wrong with ``instance`` under ``schema`` (formats checked); empty when valid."""
    validator_class = validator_for(schema, default=Draft202012Validator)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
        for error in validator.iter_errors(instance)
    ]
