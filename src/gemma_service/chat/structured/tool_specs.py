"""OpenAI tool structures (functions, tool_choice, calls) checked into plain dataclasses.

Also the text form of a call, which the model writes and the prompt shows:
``<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>``.
"""

from __future__ import annotations

import json
import re
import secrets
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from gemma_service.chat.structured.json_grammar import check_schema
from gemma_service.errors import InvalidRequestError

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
TOOL_RESPONSE_OPEN = "<tool_response"
TOOL_RESPONSE_CLOSE = "</tool_response>"

_FUNCTION_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_ID_ALPHABET = string.ascii_letters + string.digits
# A function declared without parameters takes none: its arguments are exactly {}.
_NO_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}
_COMBINATORS = ("$ref", "anyOf", "oneOf", "allOf", "enum", "const")


@dataclass(frozen=True, slots=True)
class FunctionTool:
    """A function the model may call; ``parameters`` is the JSON Schema of its arguments."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: dict(_NO_PARAMETERS))
    index: int = 0  # position in the request's ``tools``, for error messages
    # ``parameters`` as the request gave them (None: not given), for a chat template that
    # declares tools itself: it shows the model what the caller wrote.
    declared_parameters: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """``tool_choice``: none, auto, required, or one named function (mode "function")."""

    mode: Literal["none", "auto", "required", "function"]
    function_name: str | None = None


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the model made; ``arguments`` is JSON text of an object, as OpenAI sends it."""

    id: str
    name: str
    arguments: str


def new_tool_call_id() -> str:
    """A fresh id in OpenAI's shape: ``call_`` and 24 letters or digits."""
    return "call_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


def format_tool_call(name: str, arguments: Mapping[str, Any]) -> str:
    """The text of one call, as the model writes it and as past calls are shown to it."""
    payload = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return f"{TOOL_CALL_OPEN}{payload}{TOOL_CALL_CLOSE}"


def format_tool_result(name: str, content: str) -> str:
    """The text of one function result, shown to the model in a user turn."""
    return f'{TOOL_RESPONSE_OPEN} name="{name}">\n{content}\n{TOOL_RESPONSE_CLOSE}'


def parse_tools(tools: Sequence[Mapping[str, Any]] | None) -> list[FunctionTool]:
    """Check OpenAI ``tools`` entries and return them as FunctionTools (400 if malformed)."""
    parsed: list[FunctionTool] = []
    for index, tool in enumerate(tools or []):
        where = f"tools[{index}]"
        if not isinstance(tool, Mapping) or tool.get("type") != "function":
            raise InvalidRequestError(f"{where}.type must be 'function'", param=f"{where}.type")
        function = tool.get("function")
        if not isinstance(function, Mapping):
            raise InvalidRequestError(f"{where}.function is required", param=f"{where}.function")
        name = function.get("name")
        if not isinstance(name, str) or not _FUNCTION_NAME.fullmatch(name):
            raise InvalidRequestError(
                f"{where}.function.name must be 1-64 letters, digits, '_', '-' or '.'",
                param=f"{where}.function.name",
            )
        if any(t.name == name for t in parsed):
            raise InvalidRequestError(
                f"{where}.function.name: duplicate function name {name!r}",
                param=f"{where}.function.name",
            )
        description = function.get("description") or ""
        given = function.get("parameters")
        parameters = _parameters_schema(given, f"{where}.function.parameters")
        declared = dict(given) if isinstance(given, Mapping) else None
        parsed.append(FunctionTool(name, str(description), parameters, index, declared))
    return parsed


def _parameters_schema(schema: Any, where: str) -> dict[str, Any]:
    if schema is None:
        return dict(_NO_PARAMETERS)
    if not isinstance(schema, Mapping):
        raise InvalidRequestError(f"{where} must be a JSON Schema object", param=where)
    if schema.get("type", "object") != "object":
        raise InvalidRequestError(
            f"{where}.type must be 'object': arguments are a JSON object", param=where
        )
    check_schema(schema, where=where, param=where)
    if "type" not in schema and not any(key in schema for key in _COMBINATORS):
        return {**schema, "type": "object"}  # arguments are always an object
    return dict(schema)


def parse_tool_choice(
    choice: str | Mapping[str, Any] | None, tools: Sequence[FunctionTool]
) -> ToolChoice:
    """Check ``tool_choice`` against the tools; the default is auto with tools, none without."""
    if choice is None:
        return ToolChoice("auto" if tools else "none")
    if choice == "none":
        return ToolChoice("none")
    if choice == "auto":
        return ToolChoice("auto" if tools else "none")
    if choice == "required":
        if not tools:
            raise InvalidRequestError(
                "tool_choice 'required' needs at least one tool in tools", param="tool_choice"
            )
        return ToolChoice("required")
    if isinstance(choice, Mapping) and choice.get("type") == "function":
        function = choice.get("function")
        name = function.get("name") if isinstance(function, Mapping) else None
        if not any(tool.name == name for tool in tools):
            raise InvalidRequestError(
                f"tool_choice names function {name!r}, which is not in tools",
                param="tool_choice.function.name",
            )
        return ToolChoice("function", name)
    raise InvalidRequestError(
        "tool_choice must be 'none', 'auto', 'required' or "
        '{"type": "function", "function": {"name": ...}}',
        param="tool_choice",
    )
