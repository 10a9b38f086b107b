"""Tool definitions, tool_choice, the prompt instructions and the forced-call grammar."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gemma_service.api.openai_bodies import tool_call_body
from gemma_service.chat.structured import (
    FunctionTool,
    ToolChoice,
    format_tool_call,
    parse_tool_calls,
    parse_tool_choice,
    parse_tools,
    render_tool_instructions,
    tool_call_grammar,
    validate_instance,
)
from gemma_service.errors import InvalidRequestError

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 40},
                "unit": {"enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {
            "type": "object",
            "properties": {"timezone": {"type": "string"}},
            "required": ["timezone"],
        },
    },
}
NO_ARGS = {"type": "function", "function": {"name": "ping"}}
TOOLS = parse_tools([WEATHER, TIME])

WEATHER_CALL = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
TIME_CALL = '<tool_call>{"name": "get_time", "arguments": {"timezone": "UTC"}}</tool_call>'


def test_tools_are_parsed_with_their_schemas() -> None:
    weather, ping = parse_tools([WEATHER, NO_ARGS])
    assert weather.name == "get_weather"
    assert weather.description == "Current weather in a city."
    assert weather.parameters["required"] == ["city"]
    assert ping.parameters == {"type": "object", "properties": {}}  # no parameters: exactly {}


@pytest.mark.parametrize(
    ("tools", "param"),
    [
        ([{"type": "retrieval"}], "tools[0].type"),
        ([{"type": "function"}], "tools[0].function"),
        ([{"type": "function", "function": {"name": "has space"}}], "tools[0].function.name"),
        ([WEATHER, WEATHER], "tools[1].function.name"),
        (
            [{"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}}],
            "tools[0].function.parameters",
        ),
        (
            [{"type": "function", "function": {"name": "f", "parameters": {"type": 3}}}],
            "tools[0].function.parameters",
        ),
    ],
)
def test_malformed_tools_are_400s_naming_the_field(tools: list[Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        parse_tools(tools)
    assert raised.value.param == param


def test_tool_choice_defaults_and_named_functions() -> None:
    assert parse_tool_choice(None, TOOLS) == ToolChoice("auto")
    assert parse_tool_choice(None, []) == ToolChoice("none")
    assert parse_tool_choice("required", TOOLS) == ToolChoice("required")
    named = {"type": "function", "function": {"name": "get_time"}}
    assert parse_tool_choice(named, TOOLS) == ToolChoice("function", "get_time")


@pytest.mark.parametrize(
    ("choice", "tools", "param"),
    [
        ("required", [], "tool_choice"),
        ({"type": "function", "function": {"name": "nope"}}, TOOLS, "tool_choice.function.name"),
        ("sometimes", TOOLS, "tool_choice"),
    ],
)
def test_bad_tool_choice_is_a_400(choice: Any, tools: list[FunctionTool], param: str) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        parse_tool_choice(choice, tools)
    assert raised.value.param == param


def test_instructions_describe_the_functions_and_the_call_format() -> None:
    text = render_tool_instructions(TOOLS, ToolChoice("auto"), parallel=True)
    assert "get_weather" in text and "Current weather in a city." in text
    assert '"required": ["city"]' in text
    assert '<tool_call>{"name": "<function name>", "arguments": {...}}</tool_call>' in text
    named = render_tool_instructions(TOOLS, ToolChoice("function", "get_time"), parallel=False)
    assert "You must call the function get_time" in named
    assert "at most one function" in named
    assert render_tool_instructions(TOOLS, ToolChoice("none"), parallel=True) == ""


def test_no_grammar_unless_a_call_is_required() -> None:
    assert tool_call_grammar(TOOLS, ToolChoice("auto"), parallel=True) is None
    assert tool_call_grammar(TOOLS, ToolChoice("none"), parallel=True) is None


def test_required_grammar_allows_a_valid_call_of_any_function(grammar_oracle: Any) -> None:
    gbnf = tool_call_grammar(TOOLS, ToolChoice("required"), parallel=False)
    assert gbnf is not None
    assert grammar_oracle.matches(gbnf, WEATHER_CALL)
    assert grammar_oracle.matches(gbnf, TIME_CALL)
    assert grammar_oracle.matches(
        gbnf,
        '<tool_call>{"name":"get_weather","arguments":{"city":"Oslo","unit":"celsius"}}'
        "</tool_call>",
    )
    refused = [
        "Sure! " + WEATHER_CALL,  # no text around the call
        '<tool_call>{"name": "get_news", "arguments": {}}</tool_call>',  # unknown function
        '<tool_call>{"name": "get_weather", "arguments": {}}</tool_call>',  # missing city
        '<tool_call>{"name": "get_weather", "arguments": {"city": "P", "unit": "K"}}</tool_call>',
        '<tool_call>{"name": "get_time", "arguments": {"city": "Paris"}}</tool_call>',
        WEATHER_CALL + "\n" + TIME_CALL,  # one call only without parallel calls
    ]
    for text in refused:
        assert not grammar_oracle.matches(gbnf, text), text


def test_parallel_grammar_allows_several_calls_up_to_the_bound(grammar_oracle: Any) -> None:
    gbnf = tool_call_grammar(TOOLS, ToolChoice("required"), parallel=True)
    assert gbnf is not None
    assert grammar_oracle.matches(gbnf, WEATHER_CALL + "\n" + TIME_CALL)
    assert grammar_oracle.matches(gbnf, "\n".join([WEATHER_CALL] * 8))
    assert not grammar_oracle.matches(gbnf, "\n".join([WEATHER_CALL] * 9))


def test_named_grammar_allows_only_that_function(grammar_oracle: Any) -> None:
    gbnf = tool_call_grammar(TOOLS, ToolChoice("function", "get_time"), parallel=True)
    assert gbnf is not None
    assert grammar_oracle.matches(gbnf, TIME_CALL)
    assert not grammar_oracle.matches(gbnf, WEATHER_CALL)


def test_function_without_parameters_gets_empty_arguments(grammar_oracle: Any) -> None:
    gbnf = tool_call_grammar(parse_tools([NO_ARGS]), ToolChoice("required"), parallel=False)
    assert gbnf is not None
    assert grammar_oracle.matches(gbnf, '<tool_call>{"name": "ping", "arguments": {}}</tool_call>')
    assert not grammar_oracle.matches(
        gbnf, '<tool_call>{"name": "ping", "arguments": {"x": 1}}</tool_call>'
    )


def test_unsupported_parameter_schema_is_refused_only_when_a_call_is_forced() -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {"type": "object", "properties": {"q": {"pattern": "^a"}}},
        },
    }
    tools = parse_tools([WEATHER, tool])  # fine for auto: nothing is enforced
    assert tool_call_grammar(tools, ToolChoice("auto"), parallel=True) is None
    with pytest.raises(InvalidRequestError) as raised:
        tool_call_grammar(tools, ToolChoice("required"), parallel=True)
    assert raised.value.param == "tools[1].function.parameters"
    assert "'pattern'" in raised.value.message
    assert "#/properties/q/pattern" in raised.value.message


def test_a_call_written_in_the_prompt_format_parses_back() -> None:
    text = format_tool_call("get_weather", {"city": "Zürich", "unit": "celsius"})
    content, calls = parse_tool_calls(text, ["get_weather"])
    assert content == ""
    [call] = calls
    assert call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Zürich", "unit": "celsius"}
    assert call.id.startswith("call_") and len(call.id) == 29
    assert tool_call_body(call) == {
        "id": call.id,
        "type": "function",
        "function": {"name": "get_weather", "arguments": call.arguments},
    }


def test_calls_the_grammar_allows_parse_to_valid_arguments(grammar_oracle: Any) -> None:
    gbnf = tool_call_grammar(TOOLS, ToolChoice("required"), parallel=True)
    assert gbnf is not None
    text = WEATHER_CALL + "\n" + TIME_CALL
    assert grammar_oracle.matches(gbnf, text)
    content, calls = parse_tool_calls(text, [t.name for t in TOOLS])
    assert content == ""
    schemas = {t.name: t.parameters for t in TOOLS}
    assert [c.name for c in calls] == ["get_weather", "get_time"]
    for call in calls:
        assert validate_instance(schemas[call.name], json.loads(call.arguments)) == []
