"""The real Gemma 3 270M sampling under our grammars: what it writes parses and validates."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gemma_service.chat.structured import (
    ToolChoice,
    parse_tool_calls,
    parse_tools,
    render_tool_instructions,
    schema_to_gbnf,
    tool_call_grammar,
    validate_instance,
)

# Every string and list is bounded, so a reply always fits in max_tokens.
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 24},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "born": {"type": "string", "format": "date"},
        "hobbies": {
            "type": "array",
            "items": {"type": "string", "maxLength": 16},
            "maxItems": 2,
        },
        "pet": {"anyOf": [{"enum": ["cat", "dog"]}, {"type": "null"}]},
    },
    "required": ["name", "age", "born"],
}
TOOLS = parse_tools(
    [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather in a city.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "city": {"type": "string", "maxLength": 32},
                        "unit": {"enum": ["celsius", "fahrenheit"]},
                    },
                    "required": ["city", "unit"],
                },
            },
        },
        {
            "type": "function",
            "function": {
                "name": "add",
                "description": "Add two integers.",
                "parameters": {
                    "type": "object",
                    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                    "required": ["a", "b"],
                },
            },
        },
    ]
)


def gemma_prompt(system: str, user: str) -> str:
    return (
        f"<start_of_turn>user\n{system}\n\n{user}<end_of_turn>\n<start_of_turn>model\n"
    ).lstrip()


@pytest.mark.parametrize("seed", [0, 1])
def test_json_schema_replies_parse_and_validate(grammar_sampler: Any, seed: int) -> None:
    prompt = gemma_prompt("Reply with JSON.", "Describe a fictional person.")
    text = grammar_sampler.generate(prompt, schema_to_gbnf(PERSON), seed=seed, max_tokens=200)
    assert validate_instance(PERSON, json.loads(text)) == [], text


@pytest.mark.parametrize("seed", [0, 1])
def test_required_tool_choice_yields_a_valid_call(grammar_sampler: Any, seed: int) -> None:
    choice = ToolChoice("required")
    instructions = render_tool_instructions(TOOLS, choice, parallel=False)
    prompt = gemma_prompt(instructions, "What is the weather in Paris?")
    gbnf = tool_call_grammar(TOOLS, choice, parallel=False)
    assert gbnf is not None
    text = grammar_sampler.generate(prompt, gbnf, seed=seed, max_tokens=120)
    content, calls = parse_tool_calls(text, [tool.name for tool in TOOLS], parallel=False)
    assert content == "", text
    [call] = calls
    schema = next(tool.parameters for tool in TOOLS if tool.name == call.name)
    assert validate_instance(schema, json.loads(call.arguments)) == [], text
